"""``python -m bench``: the command line of the benchmark harness."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import procs
from bench.cluster import REPO, explain_settings, throwaway_cluster
from bench.config import sizes_for
from bench.context import Context, log
from bench.runner import Scenario, run_scenarios
from bench.setup_db import create_bench_database
from bench.snapshot import freeze

SCENARIOS = ("enqueue", "drain", "sql_drain", "wakeup", "peers", "profile", "sustained")
OPTIONAL_SCENARIOS = ("bloat", "limits")  # run only when named with --only
DEFAULT_PEERS_PYTHON = REPO / "bench" / ".venv-peers" / "bin" / "python"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="pgtq vs a hand-written SQL queue (and the peers) on a throwaway cluster.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts and a short sustained run (about a minute)"
    )
    parser.add_argument(
        "--peers",
        default="",
        help="comma-separated peers to run too: procrastinate,pgqueuer (or 'all'); needs --peers-python",
    )
    parser.add_argument(
        "--peers-python", type=Path, default=DEFAULT_PEERS_PYTHON, help="interpreter of the peers' virtualenv"
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated scenarios to run (default: {','.join(SCENARIOS)}; "
        f"only when named: {','.join(OPTIONAL_SCENARIOS)})",
    )
    parser.add_argument(
        "--sustained-seconds", type=float, help="length of pgtq's sustained run (default 300, quick 24)"
    )
    parser.add_argument(
        "--offered-rate",
        type=float,
        help="sustained run: push this many jobs/s to both systems (default: a fraction of each drain rate)",
    )
    parser.add_argument(
        "--sustained-autovacuum-off",
        action="store_true",
        help="sustained run: autovacuum off for the job tables, so the plans workers make on the emptied "
        "table are never replanned during the run",
    )
    parser.add_argument(
        "--sustained-load",
        type=float,
        default=0.7,
        help="sustained run: the fraction of the measured drain rate to offer (default 0.7)",
    )
    parser.add_argument(
        "--bloat-jobs", type=int, help="bloat scenario: jobs pushed (default 1,000,000, quick 20,000)"
    )
    parser.add_argument(
        "--bloat-naptime", type=int, help="bloat scenario: autovacuum_naptime in seconds (default 10)"
    )
    parser.add_argument(
        "--concurrency", type=int, help="pgtq worker --concurrency for its best settings (skips tuning)"
    )
    parser.add_argument(
        "--async-commit-pass",
        action="store_true",
        help="repeat enqueue and drains with synchronous_commit=off",
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="skip EXPLAIN ANALYZE and the worker profile"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run the pgtq enqueue and drain scenarios against this commit of the repository (e.g. the "
        "last commit of a previous release), each right after this checkout's, reported side by side",
    )
    parser.add_argument(
        "--explain-slower-than",
        type=float,
        metavar="MS",
        help="log the plan of every statement slower than MS milliseconds, functions' own queries too "
        "(auto_explain), and keep the server log beside the results as STEM-server.log",
    )
    parser.add_argument("--output", type=Path, help="results folder (default bench/results)")
    parser.add_argument("--stem", help="file name stem (default: the date and time, with -quick for --quick)")
    return parser


def _scenarios(names: list[str], ref: dict[str, Scenario] | None = None) -> list[tuple[str, Scenario]]:
    """The scenarios to run, in order; with a ``--baseline`` ref, each of its
    scenarios right after the one of this checkout it follows."""
    from bench import peers, profile
    from bench.scenarios import bloat, drain, enqueue, limits, sqldrain, sustained, wakeup

    table: dict[str, Scenario] = {
        "enqueue": enqueue.run,
        "drain": drain.run,
        "sql_drain": sqldrain.run,
        "wakeup": wakeup.run,
        "peers": peers.run,
        "profile": profile.run,
        "sustained": sustained.run,
        "bloat": bloat.run,
        "limits": limits.run,
    }
    if ref:
        from bench.reference import interleave

        table |= {f"ref_{name}": scenario for name, scenario in ref.items()}
        names = interleave(names, ref)
    return [(name, table[name]) for name in names]


def _async_pass(ctx: Context) -> dict[str, Any]:
    from bench.scenarios import drain, enqueue, sqldrain

    ctx.cluster.set_synchronous_commit("off")
    saved, ctx.results = ctx.results, {}
    try:
        # pgtq and the ceiling only: the second pass's table has no peers' column.
        runs = [
            ("enqueue", enqueue.run),
            ("drain", partial(drain.run, peers=(), with_ref=False)),
            ("sql_drain", sqldrain.run),
        ]
        run_scenarios(ctx, runs)
        return ctx.results
    finally:
        ctx.results = saved
        ctx.cluster.set_synchronous_commit("on")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [n for n in (args.only.split(",") if args.only else SCENARIOS) if n]
    unknown = set(names) - set(SCENARIOS) - set(OPTIONAL_SCENARIOS)
    if unknown:
        print(f"bench: unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    peers = (
        ("procrastinate", "pgqueuer") if args.peers == "all" else tuple(p for p in args.peers.split(",") if p)
    )
    if not peers and "peers" in names:
        names.remove("peers")
    sizes = replace(
        sizes_for(args.quick, args.sustained_seconds, args.bloat_jobs, args.bloat_naptime),
        sustained_load=args.sustained_load,
        offered_rate=args.offered_rate,
        sustained_autovacuum=not args.sustained_autovacuum_off,
    )
    started = time.monotonic()
    interrupted = False
    now = datetime.now(UTC)
    stem = args.stem or now.strftime("%Y-%m-%d-%H%M") + ("-quick" if args.quick else "")
    command = "python -m bench " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    from bench import machine
    from bench.report.write import RESULTS_DIR

    results: dict[str, Any] = {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command.strip(),
        "mode": "quick" if args.quick else "full",
        "sizes": sizes.__dict__,
        "machine": machine.describe(args.peers_python if peers else None),
    }
    try:
        with (
            tempfile.TemporaryDirectory(prefix="pgtq-bench-scratch-") as scratch,
            throwaway_cluster(
                log,
                explain_settings(args.explain_slower_than) if args.explain_slower_than else None,
                (args.output or RESULTS_DIR) / f"{stem}-server.log" if args.explain_slower_than else None,
            ) as cluster,
        ):
            frozen = freeze(Path(scratch) / "code")
            results["code_under_test"] = frozen
            log(f"code under test frozen: {frozen['sha256']} (pgtq/, sql/, migrations/ copied to scratch)")
            dsn = create_bench_database(cluster)
            results["settings"] = cluster.settings()
            ctx = Context(
                cluster=cluster,
                sizes=sizes,
                scratch=Path(scratch),
                dsn=dsn,
                results=results,
                peers_python=args.peers_python if peers else None,
                peers=peers,
                profile=not args.no_profile,
                code_dir=Path(frozen["path"]),
            )
            if args.concurrency:
                ctx.pgtq_best_concurrency, ctx.tune = args.concurrency, False
            ref_scenarios = _baseline(args.baseline, ctx, cluster, results) if args.baseline else None
            log(
                f"machine: {results['machine']['cores']} cores, {results['machine']['memory_gib']} GiB; "
                f"PostgreSQL {results['settings'].get('server_version')}, "
                f"synchronous_commit={results['settings'].get('synchronous_commit')}"
            )
            try:
                run_scenarios(ctx, _scenarios(names, ref_scenarios))
                if args.async_commit_pass:
                    results["async_commit_pass"] = _async_pass(ctx)
            finally:
                procs.stop_all()
    except KeyboardInterrupt:
        log("interrupted: writing what was measured (not as latest)")
        interrupted = True
    results["total_seconds"] = round(time.monotonic() - started, 1)
    from bench.report.markdown import bloat_table, headline_table, machine_block, ref_table, sustained_table
    from bench.report.write import write

    paths = write(results, stem, args.output or RESULTS_DIR, latest=not (args.only or interrupted))
    print(machine_block(results))
    print()
    for table in (
        headline_table(results),
        ref_table(results),
        sustained_table(results),
        bloat_table(results),
    ):
        if table:
            print(table)
            print()
    for kind, path in paths.items():
        print(f"wrote {kind}: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 1 if _report_problems(results) or interrupted else 0


def _baseline(ref: str, ctx: Context, cluster: Any, results: dict[str, Any]) -> dict[str, Scenario]:
    """Set up ``--baseline REF``: its code from git, its database; its
    scenarios (see bench/reference.py)."""
    from bench import reference

    info = reference.export(ref, ctx.scratch / "ref")
    reference.log_ref(info)
    results["ref"] = info
    ref_ctx = reference.context(ctx, Path(info["path"]), reference.install(cluster, Path(info["path"])))
    ctx.ref = ref_ctx
    return reference.scenarios(ctx, ref_ctx)


def _report_problems(results: dict[str, Any]) -> bool:
    """Print what broke (scenario errors, jobs not handled exactly once) on
    stderr; whether anything did. Such a run exits 1."""
    from bench.summary import correctness_failures, scenario_errors

    problems = [f"{name} failed: {error}" for name, error in scenario_errors(results).items()]
    problems += [f"jobs not handled exactly once: {where}" for where in correctness_failures(results)]
    for problem in problems:
        print(f"bench: {problem}", file=sys.stderr)
    return bool(problems)
