"""Turn a run's results into JSON, markdown and PNG charts."""
