"""The chaos suite: a short run (workers killed and PostgreSQL stopped
mid-load, and still no job lost; the full run is `make chaos`), and the
explicit opt-out for servers the tests cannot stop. Its pass rule is tested
on made-up books in tests/py/unit/test_chaos_rule.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO, SKIP_SERVER_CONTROL, server_datadir

CHAOS = REPO / "tests" / "chaos" / "run.py"


def short_chaos_run(*options: str) -> str:
    """A run of 2,000 jobs with 4 kills and one PostgreSQL stop; its summary line, checked.
    Each run of the handler lasts 5 ms: without it 2,000 jobs could all be
    done between two looks of the run, before its later kills and its stop
    (seen once: 1 kill of 4 in 3 s)."""
    server_datadir()
    result = subprocess.run(
        [
            sys.executable,
            str(CHAOS),
            "--jobs",
            "2000",
            "--kills",
            "4",
            "--restarts",
            "1",
            "--handler-seconds",
            "0.005",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = next((line for line in result.stdout.splitlines() if line.startswith("chaos: jobs=")), "")
    print(summary)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"kills=4/4 .* restarts=1/1 .* never_ran=0 .* unexplained 0\) .* OK$", summary), summary
    return summary


def test_short_chaos_run_loses_nothing() -> None:
    short_chaos_run()


def test_short_chaos_run_of_a_limited_queue_keeps_its_limit() -> None:
    # 4 workers of 4 slots against max_running 6: the slots of schema 0.9.0
    # under kills and a server stop (the run fails when a sample sees more).
    short_chaos_run("--max-running", "6")


# -- the opt-out ---------------------------------------------------------------------


def _pytest_without_the_server(opt_out: bool) -> subprocess.CompletedProcess[str]:
    """This file's chaos test, run as if PGTQ_TEST_DSN named an outside server."""
    env = {k: v for k, v in os.environ.items() if k not in ("PGTQ_TEST_PGDATA", SKIP_SERVER_CONTROL)}
    if opt_out:
        env[SKIP_SERVER_CONTROL] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_short_chaos_run_loses_nothing",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env=env,
    )


def test_an_outside_server_fails_the_server_control_tests_without_the_opt_out() -> None:
    result = _pytest_without_the_server(opt_out=False)
    assert result.returncode == 1, result.stdout
    assert f"set {SKIP_SERVER_CONTROL}=1" in result.stdout


def test_the_opt_out_skips_them_and_the_summary_names_them() -> None:
    result = _pytest_without_the_server(opt_out=True)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert f"{SKIP_SERVER_CONTROL}=1: server-control tests skipped" in result.stdout
    assert (
        "not run (stops and starts PostgreSQL): tests/py/test_chaos.py::test_short_chaos_run_loses_nothing"
        in (result.stdout)
    )
