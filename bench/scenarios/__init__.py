"""One module per scenario of the benchmark; each returns plain dicts for the report."""
