"""Which flags the installed ``pgtq worker`` has, read from its ``--help``.

The worker runtime is being rewritten (``--concurrency N``, ``--pool
thread|process``); the harness uses those flags when present and works
without them.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerFlags:
    """The optional flags ``pgtq worker`` accepts."""

    help_text: str
    concurrency: bool
    pool: bool
    pool_choices: tuple[str, ...]
    batch_size: bool


def detect(pgtq_cli: Sequence[str], env: Mapping[str, str] | None = None) -> WorkerFlags:
    """Ask ``pgtq worker --help`` which flags exist (in ``env``: the code
    under test first on its PYTHONPATH)."""
    result = subprocess.run(
        [*pgtq_cli, "worker", "--help"], capture_output=True, text=True, check=False, env=env
    )
    text = result.stdout + result.stderr
    choices: tuple[str, ...] = ()
    match = re.search(r"--pool\s+\{([^}]*)\}", text)
    if match:
        choices = tuple(choice.strip() for choice in match.group(1).split(","))
    return WorkerFlags(
        help_text=text,
        concurrency="--concurrency" in text,
        pool="--pool" in text,
        pool_choices=choices,
        batch_size="--batch-size" in text,
    )


def best_args(flags: WorkerFlags, batch: int, concurrency: int, pool: str) -> list[str]:
    """Worker arguments for the best settings the installed worker supports."""
    args = ["--batch-size", str(batch)] if flags.batch_size else []
    if flags.concurrency:
        args += ["--concurrency", str(concurrency)]
    if flags.pool and (not flags.pool_choices or pool in flags.pool_choices):
        args += ["--pool", pool]
    return args
