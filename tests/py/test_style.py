"""The code base stays ruff clean (lint and format)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

PATHS = [p for p in ("pgtq", "tests", "migrations", "examples", "scripts", "bench") if (REPO / p).exists()]


def test_ruff_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *PATHS], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *PATHS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
