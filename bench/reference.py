"""``--baseline REF``: the same pgtq scenarios, in the same run, against
another commit of this repository (a previous release), reported beside
this checkout's figures.

The ref's ``pgtq/``, ``sql/``, ``migrations/`` and ``pgtq.control`` are
taken from git (``git archive``, which changes nothing in the checkout)
into the run's scratch folder. The ref gets a database of its own on the
run's cluster, installed by its own migrate route (run in a child process
with the ref first on PYTHONPATH), and every process that runs its code
(the ``pgtq worker`` command, the Python-API enqueue clients) gets that
PYTHONPATH. The SQL-only enqueue forms send the same statements to either
database. The hand-written ceiling is not measured again.

The ref's scenarios run right after this checkout's (enqueue, then the
ref's enqueue; drain, then the ref's drain; the same for wakeup and
limits), at the same settings (the
drain reuses the worker concurrency found for this checkout), so the two
figures of a row are measured minutes apart, not a run apart. The ref's
best-settings drains go further: they run in this checkout's drain
rounds, in turn with this checkout's and the ceiling's (``Context.ref``;
from 2026-12-06, after a slow spell of the machine fell on every round of
a ref's drains and none of this checkout's).
"""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import psycopg

from bench import baseline, procs
from bench.cluster import REPO, BenchCluster
from bench.context import Context, log
from bench.runner import Scenario
from bench.snapshot import PARTS

DATABASE = "bench_ref"


def export(ref: str, dest: Path) -> dict[str, Any]:
    """The code of ``ref`` (a commit, tag or branch) in ``dest``: its
    commit, schema version and folder."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if commit.returncode != 0:
        raise ValueError(f"--baseline: {ref!r} is not a commit of this repository ({commit.stderr.strip()})")
    sha = commit.stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", sha, *PARTS], capture_output=True, check=True
    )
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    match = re.search(r"^default_version = '([^']+)'", (dest / "pgtq.control").read_text(), re.MULTILINE)
    return {"ref": ref, "commit": sha[:12], "version": match.group(1) if match else "?", "path": str(dest)}


def install(cluster: BenchCluster, code_dir: Path) -> str:
    """A database with the ref's pgtq (installed by the ref's own code) and
    the ceiling's schema (the scenarios' resets expect it); its DSN."""
    dsn = cluster.create_database(DATABASE)
    subprocess.run(
        [sys.executable, "-c", "import sys; from pgtq.migrate import upgrade; upgrade(sys.argv[1])", dsn],
        env=_env(code_dir),
        cwd=code_dir,  # not the checkout: only PYTHONPATH finds a pgtq
        check=True,
        capture_output=True,
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(baseline.SCHEMA_DDL)
    return dsn


def _env(code_dir: Path) -> dict[str, str]:
    import os

    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(code_dir), str(REPO)]))


def context(ctx: Context, code_dir: Path, dsn: str) -> Context:
    """The run's context for the ref: its database and code; results of its own."""
    return dataclasses.replace(ctx, dsn=dsn, code_dir=code_dir, results={}, tune=False, peers=())


def scenarios(ctx: Context, ref_ctx: Context) -> dict[str, Scenario]:
    """The ref's scenarios, by the name of this checkout's scenario each
    follows: ``ref_enqueue`` after ``enqueue``, ``ref_drain`` after ``drain``,
    ``ref_wakeup`` after ``wakeup``, ``ref_limits`` after ``limits``."""
    from bench.scenarios import drain, enqueue, limits, wakeup

    def ref_enqueue(_ctx: Context) -> Any:
        return enqueue.run(ref_ctx, systems=("pgtq",))

    def ref_drain(_ctx: Context) -> Any:
        ref_ctx.pgtq_best_concurrency = ctx.pgtq_best_concurrency  # this checkout's, found by its tuning
        headline = ctx.results.get("drain", {}).get("ref_runs") or None  # from this checkout's rounds
        try:
            return drain.run(ref_ctx, systems=("pgtq",), peers=(), with_ref=False, headline=headline)
        finally:
            procs.stop_all()

    def ref_wakeup(_ctx: Context) -> Any:
        try:
            # The ref's worker beside the same two idle workers as this
            # checkout's: the same load, so the two runs compare alike.
            return wakeup.run(ref_ctx)
        finally:
            procs.stop_all()

    def ref_limits(_ctx: Context) -> Any:
        try:
            return limits.run(ref_ctx)
        finally:
            procs.stop_all()

    chosen = {"enqueue": ref_enqueue, "drain": ref_drain, "wakeup": ref_wakeup}
    if _has_every_limit(ref_ctx):
        chosen["limits"] = ref_limits
    else:
        log("baseline ref: its schema has no lock keys or room check (_choose_keyed, _room): no ref_limits")
    return chosen


def _has_every_limit(ref_ctx: Context) -> bool:
    """Whether the ref's schema has what the limits scenario calls (lock keys
    and the room check of a max_running queue: schema 0.3.0 and later)."""
    probe = "SELECT to_regproc('pgtq._choose_keyed') IS NOT NULL AND to_regproc('pgtq._room') IS NOT NULL"
    return bool(ref_ctx.execute(probe)[0][0])


def interleave(names: list[str], ref: dict[str, Scenario]) -> list[str]:
    """The run's scenario names with each ref scenario right after the one it follows."""
    ordered = []
    for name in names:
        ordered.append(name)
        if name in ref:
            ordered.append(f"ref_{name}")
    return ordered


def log_ref(info: dict[str, Any]) -> None:
    log(f"baseline ref {info['ref']}: commit {info['commit']}, schema {info['version']} ({info['path']})")
