"""The short chaos run: workers killed and PostgreSQL stopped mid-load, and
still no job lost (the full run is `make chaos`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO


def test_short_chaos_run_loses_nothing() -> None:
    if not os.environ.get("PGTQ_TEST_PGDATA"):
        pytest.skip("needs the throwaway server of `make test` (PGTQ_TEST_PGDATA)")
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "chaos" / "run.py"), "--jobs", "2000", "--restarts", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = next((line for line in result.stdout.splitlines() if line.startswith("chaos: jobs=")), "")
    print(summary)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"kills=[1-9]\d* restarts=1 lost=0 ", summary), summary
