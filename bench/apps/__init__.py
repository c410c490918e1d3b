"""Programs the benchmark runs as separate processes (workers, handlers)."""
