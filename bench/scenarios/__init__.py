"""One module per scenario of issue 5; each returns plain dicts for the report."""
