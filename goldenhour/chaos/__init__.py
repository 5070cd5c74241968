"""`goldenhour chaos`: the whole system under seeded faults, and the invariants checked after."""
