"""`goldenhour bench`: latency, timer precision, ingest and recovery against the raw floor."""
