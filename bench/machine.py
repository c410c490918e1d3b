"""What the run was measured on: machine, software versions, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.cluster import REPO


def _meminfo_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def describe(peers_python: Path | None = None) -> dict[str, Any]:
    """Machine, load, versions and commit, for the report."""
    packages = {name: _version(name) for name in ("pgtq", "psycopg", "psycopg-binary", "matplotlib")}
    peer_packages: dict[str, str | None] = {}
    if peers_python is not None and peers_python.exists():
        code = (
            "import json; from importlib import metadata as m\n"
            "def v(n):\n  try: return m.version(n)\n  except Exception: return None\n"
            "names = ('procrastinate', 'pgqueuer', 'asyncpg', 'rq', 'redis', 'psycopg')\n"
            "print(json.dumps({n: v(n) for n in names}))"
        )
        out = subprocess.run([str(peers_python), "-c", code], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            import json

            peer_packages = json.loads(out.stdout)
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _meminfo_gib(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": packages,
        "peer_packages": peer_packages,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "sql", "pgtq")),
    }
