"""Freeze the code under test at the start of a run.

Other work goes on in the same checkout while a run takes its quarter of an
hour; the workers a run starts late must run the same pgtq as the schema it
installed at the start. So the run copies ``pgtq/``, ``sql/``,
``migrations/`` and ``pgtq.control`` into its scratch folder, puts that copy
first on ``sys.path`` and on every child's ``PYTHONPATH``, installs the
schema from it, and reports a digest of what it measured.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.cluster import REPO

PARTS = ("pgtq", "sql", "migrations", "pgtq.control")


def freeze(dest: Path) -> dict[str, Any]:
    """Copy the code under test to ``dest`` and make this process use it."""
    if "pgtq" in sys.modules:
        raise RuntimeError("freeze() must run before pgtq is imported")
    dest.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for part in PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, dest / part)
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(dest)).encode())
        digest.update(path.read_bytes())
    sys.path.insert(0, str(dest))
    version = re.search(r"^default_version = '([^']+)'", (dest / "pgtq.control").read_text(), re.MULTILINE)
    return {
        "path": str(dest),
        "sha256": digest.hexdigest()[:16],
        "version": version.group(1) if version else "?",
    }
