"""Reports: missing episodes, the golden-hour figures and the SSDA903 Missing table."""
