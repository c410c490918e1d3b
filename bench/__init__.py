"""pgtq's benchmark harness (``python -m bench``, ``make bench``).

It starts its own throwaway PostgreSQL cluster with durable settings, runs
its scenarios on pgtq and on a hand-written SQL queue (the
ceiling), optionally on the peers, checks that every job was handled exactly
once, and writes JSON, markdown and PNG charts to ``bench/results/``.
"""
