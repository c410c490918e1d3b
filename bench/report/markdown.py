"""The markdown report: the machine, the headline table, then each scenario's details."""

from __future__ import annotations

from typing import Any

from bench.summary import PEERS, against_ref, correctness_failures, headline, scenario_errors, steady_sizes


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if unit == "ms":
            return f"{value:.2f}"
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return str(value)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def headline_table(results: dict[str, Any]) -> str:
    """pgtq, the SQL ceiling and the peers side by side (empty if the run
    measured none of the headline figures)."""
    peers = [p for p in PEERS if p in results.get("peers", {})]
    head = ["figure", "unit", "pgtq", "SQL ceiling", "pgtq / ceiling", *peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in headline(results):
        if all(row.get(series) is None for series in ("pgtq", "ceiling", *peers)):
            continue  # not measured in this run
        cells = [
            row["metric"],
            row["unit"],
            _fmt(row["pgtq"], row["unit"]),
            _fmt(row["ceiling"], row["unit"]),
            _ratio(row["ratio"]),
            *[_fmt(row.get(p), row["unit"]) for p in peers],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def ref_table(results: dict[str, Any]) -> str:
    """This checkout's pgtq beside the ``--baseline`` ref's (empty without one)."""
    ref = results.get("ref")
    rows = against_ref(results)
    if not ref or not rows:
        return ""
    this = results.get("code_under_test", {})
    lines = [
        f"pgtq of this checkout (schema {this.get('version', '?')}) beside `--baseline {ref['ref']}` "
        f"(commit {ref['commit']}, schema {ref['version']}), each ref scenario run right after this "
        "checkout's (the best-settings drains in the same rounds, in turn), jobs/s (the wake-up: "
        "milliseconds, lower is better):",
        "",
        f"| figure | this checkout | {ref['ref']} | this / {ref['ref']} |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['metric']} | {_fmt(row['this'])} | {_fmt(row['ref'])} | {_ratio(row['ratio'])} |"
        )
    return "\n".join(lines)


def machine_block(results: dict[str, Any]) -> str:
    """Machine, PostgreSQL settings, package versions and the command."""
    m = results.get("machine", {})
    s = results.get("settings", {})
    pk = ", ".join(
        f"{k} {v}" for k, v in {**m.get("packages", {}), **m.get("peer_packages", {})}.items() if v
    )
    return (
        f"- machine: {m.get('cores')} cores ({m.get('cpu')}), {m.get('memory_gib')} GiB, "
        f"kernel {m.get('kernel')}, load average at start {m.get('load_average_at_start')}\n"
        f"- PostgreSQL {s.get('server_version')}: fsync={s.get('fsync')}, "
        f"synchronous_commit={s.get('synchronous_commit')}, full_page_writes={s.get('full_page_writes')}, "
        f"wal_sync_method={s.get('wal_sync_method')}, shared_buffers={s.get('shared_buffers')}, "
        f"autovacuum_naptime={s.get('autovacuum_naptime')}\n"
        f"- Python {m.get('python')}; {pk}\n"
        f"- pgtq commit {m.get('git_commit')}{' (with uncommitted changes)' if m.get('git_dirty') else ''}, "
        f"code under test {results.get('code_under_test', {}).get('sha256')}; "
        f"command: `{results.get('command')}`; mode: {results.get('mode')}; "
        f"run took {results.get('total_seconds')} s"
    )


def _correctness(results: dict[str, Any]) -> str:
    bad = correctness_failures(results)
    if not bad:
        return (
            "Every job of every scenario was handled exactly once (handler records match the queues' tables)."
        )
    return "**Correctness failures:** " + "; ".join(bad)


def _held_for(snap: dict[str, Any]) -> str:
    if "start_s" not in snap or "end_s" not in snap:
        return ""
    return f"{snap['end_s'] - snap['start_s']:.0f} s, "


def sustained_table(results: dict[str, Any]) -> str:
    """One row per system of the sustained run (empty if it did not run)."""
    rows = results.get("sustained")
    if not isinstance(rows, list):
        return ""
    lines = [
        "| system | offered | per interval (jobs/s) | last/first | latency p50 per interval (ms) | "
        "max table / indexes | table + indexes, steady phase, earlier / later | max dead | "
        "snapshot held: for, before -> during (jobs/s), peak backlog, recovery |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        snap = row.get("snapshot", {})
        rates = ", ".join(f"{r['jobs_per_s']:,.0f}" for r in row["per_interval"])
        p50s = ", ".join(_fmt(r["latency"]["p50_ms"], "ms") for r in row["per_interval"])
        cells = [
            row["system"],
            f"{row['offered_jobs_per_s']:,.0f}/s for {row['duration_s']:.0f} s",
            rates,
            str(row["last_vs_first"]),
            p50s,
            f"{row['max_table_bytes'] // 1024:,} KiB / {row['max_index_bytes'] // 1024:,} KiB",
            _steady(row),
            f"{row['max_dead']:,}",
            f"{_held_for(snap)}{_fmt(snap.get('jobs_per_s_before'))}"
            f" -> {_fmt(snap.get('jobs_per_s_during'))}, {snap.get('peak_backlog')},"
            f" {snap.get('recovery_s')} s",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def bloat_table(results: dict[str, Any]) -> str:
    """The bloat scenario's points and figures (empty if it did not run)."""
    run = results.get("bloat")
    if not isinstance(run, dict) or "points" not in run:
        return ""
    lines = [
        f"{run['jobs']:,} jobs pushed {run['chunk']:,} per transaction, drained at batch 100, pruned "
        f"{run['retention_s']} s after finishing; autovacuum_naptime = {run['naptime_s']} s.",
        "",
        "| jobs | seconds | table KiB | table + indexes KiB | dead tuples | pop p50 ms | pop p95 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in run["points"]:
        lines.append(
            f"| {p['jobs']:,} | {p['seconds']:.0f} | {p['table_bytes'] // 1024:,}"
            f" | {p['total_bytes'] // 1024:,} | {p['dead_tuples']:,} | {p['pop_p50_ms']:.2f}"
            f" | {p['pop_p95_ms']:.2f} |"
        )
    lines += [
        "",
        f"Largest table + indexes {run['largest_total_bytes'] // 1024:,} KiB; the last size is "
        f"{run['last_vs_first_half_largest']}x the largest of the first half; the last pop p50 is "
        f"{run['pop_p50_last_vs_first']}x the first.",
    ]
    return "\n".join(lines)


def rounds_list(results: dict[str, Any]) -> str:
    """Every figure measured in rounds (the headline drains, the SQL-only
    drains): the median the tables show, and each round's jobs/s."""
    rows: list[dict[str, Any]] = []
    drain = results.get("drain")
    if isinstance(drain, dict):
        rows += drain.get("runs", [])
        rows += [dict(row, system="pgtq of the ref") for row in drain.get("ref_runs", [])]
        for peer_rows in drain.get("peer_runs", {}).values():
            rows += peer_rows
    sql = results.get("sql_drain")
    rows += sql if isinstance(sql, list) else []
    lines = []
    for row in rows:
        if not isinstance(row, dict) or not row.get("rounds"):
            continue
        what = row.get("label") or ("" if row.get("kind") == row["system"] else row.get("kind"))
        name = " ".join(part for part in (row["system"], what) if part)
        deep = ", deep backlog" if row.get("deep") else ""
        sql_only = "SQL-only, " if "kind" in row and "label" not in row else ""
        each = ", ".join(f"{value:,.0f}" for value in row["rounds"])
        lines.append(
            f"- {sql_only}{name}{deep}, {row['processes']} process(es), {row['jobs']:,} jobs:"
            f" {_fmt(row['jobs_per_s'])} jobs/s, the median of {each}"
        )
    if not lines:
        return ""
    intro = "Measured in rounds, the systems in turn; each figure in the tables is the median round."
    return intro + "\n\n" + "\n".join(lines)


def _thousands(values: list[int]) -> str:
    return ", ".join(f"{value:,}" for value in values)


def limits_table(results: dict[str, Any], scenario: str = "limits") -> str:
    """The limits scenario: a max_running queue against an unlimited one,
    and the cost of counting beside running jobs (empty if it did not run);
    ``scenario="ref_limits"``: the same of a ``--baseline`` ref."""
    run = results.get(scenario)
    if not isinstance(run, dict) or "drain" not in run:
        return ""
    lines = [
        "Each figure is the median of its rounds (jobs/s of each round in brackets).",
        "",
        "| run | settings | jobs | jobs/s |",
        "| --- | --- | ---: | ---: |",
    ]
    parts = (
        ("drain", run["drain"]),
        ("drain", run.get("timed", [])),
        ("SQL pop + complete, batch 1", run["counting"]),
    )
    for part, rows in parts:
        for row in rows:
            rounds = ", ".join(f"{value:,.0f}" for value in row["rounds"])
            lines.append(
                f"| {part}, {row['label']} | {row['settings']} x{row['processes']} | {row['jobs']:,}"
                f" | {_fmt(row['jobs_per_s'])} ({rounds}) |"
            )
    ratio = _ratio(run["limited_vs_unlimited"])
    same = _ratio(run.get("limited_vs_same_slots"))
    lines += [
        "",
        f"max_running => 50 drains at {ratio} of the unlimited queue (target: more than 80%), "
        f"and at {same} of the unlimited queue drained with at most 50 jobs in hand in all "
        "(the faster of 2 x 25 slots and 2 x 1 slot, claims of 25: what a limit of 50 leaves, "
        "at no cost for the limit itself).",
    ]
    if run.get("limited_at_bound_vs_bound") is not None:
        lines[-1] += (
            f" At 2 x 25 slots, max_running => 50 drains at {_ratio(run['limited_at_bound_vs_bound'])}"
            " of the unlimited queue at those settings: the limit's own cost."
        )
    if run.get("limited_vs_unlimited_defaults") is not None:
        lines[-1] += (
            f" Drained by the worker at its defaults (no flags), max_running => 50 drains at"
            f" {_ratio(run['limited_vs_unlimited_defaults'])} of the unlimited queue"
        )
        if run.get("limited_defaults_vs_one_slot_bound") is not None:
            lines[-1] += (
                f", and at {_ratio(run['limited_defaults_vs_one_slot_bound'])} of the unlimited queue drained"
                " with the defaults' one slot and at most 25 jobs in hand per process (its bound)"
            )
        lines[-1] += "."
    if run.get("limited_best_vs_unlimited_best") is not None:
        lines[-1] += (
            f" Each queue at the fastest of the settings above: max_running => 50 drains at"
            f" {_ratio(run['limited_best_vs_unlimited_best'])} of the unlimited queue."
        )
    if run.get("timed_limited_vs_bound") is not None:
        sleep_ms = run["timed_sleep_s"] * 1e3
        lines[-1] += (
            f" With handlers that take {sleep_ms:.0f} ms, run by workers of 2 x 50 slots, max_running => 50"
            f" drains at {_ratio(run['timed_limited_vs_bound'])} of the unlimited queue with at most 50"
            f" running (2 x 25 slots) and at {_ratio(run['timed_limited_vs_limit'])} of the limit's ceiling"
            f" (50 jobs per {sleep_ms:.0f} ms); without the limit those workers drain at"
            f" {_fmt(run['timed_unlimited_more_slots'])} jobs/s."
        )
    if run.get("count_alone"):
        counts = ", ".join(f"{row['held']:,}: {row['us_per_count']:,.1f} us" for row in run["count_alone"])
        lines += [
            "",
            f"One room check of a max_running queue (pgtq._room), by running jobs in the database: {counts}.",
        ]
    if run.get("keyed_pop_alone"):
        pops = ", ".join(
            f"{row['backlog']:,} / {row['held']:,}: {row['us_per_pop']:,.1f} us"
            for row in run["keyed_pop_alone"]
        )
        lines += [
            "",
            "One pop of a queue whose 5 lock keys are busy (it walks every waiting job and takes none),"
            f" by jobs of those keys waiting / jobs running in another queue: {pops}.",
        ]
    if run.get("flooded_pop"):
        pops = ", ".join(f"{row['backlog']:,}: {row['us_per_pop']:,.1f} us" for row in run["flooded_pop"])
        lines += [
            "",
            f"One pop of 10 from a queue of {run['flooded_pop'][0]['keys']:,} lock keys whose first jobs are"
            f" those of one busy key (the others have one job each, behind them), by the busy key's"
            f" waiting jobs: {pops}.",
        ]
    if run.get("keyed_drain"):
        drains = ", ".join(
            f"{row['keys']:,} keys: {row['jobs_per_s']:,} jobs/s ({_thousands(row['rounds'])})"
            for row in run["keyed_drain"]
        )
        lines += [
            "",
            f"A keyed queue of {run['keyed_drain'][0]['jobs']:,} jobs drained by one SQL client"
            f" (pop(25) and complete_many, synchronous_commit off), by lock keys: {drains}.",
        ]
    real = run.get("keyed_workers")
    if real:
        rates = _thousands([round(row["jobs_per_s"]) for row in real["rounds"]])
        cpus = ", ".join(str(row["server_ms_per_job"]) for row in real["rounds"])
        lines += [
            "",
            f"The real worker on a keyed queue: {real['workers']} processes at their defaults drain"
            f" {real['jobs']:,} jobs over {real['keys']} lock keys,"
            f" each a {real['sleep_s'] * 1e3:.0f} ms sleep: {real['jobs_per_s']:,.0f} jobs/s ({rates}),"
            f" server CPU {real['server_ms_per_job']} ms a job ({cpus}).",
        ]
    return "\n".join(lines)


def _steady(row: dict[str, Any]) -> str:
    sizes = steady_sizes(row)
    return "too short to tell" if sizes is None else f"{sizes[0] // 1024:,} / {sizes[1] // 1024:,} KiB"


def render(results: dict[str, Any], charts: list[str]) -> str:
    """The whole markdown report."""
    parts = [
        f"# pgtq benchmark, {results.get('date')}",
        machine_block(results),
    ]
    for title, table in (
        ("Headline", headline_table(results)),
        ("Against the baseline ref", ref_table(results)),
        ("Sustained load and held snapshot", sustained_table(results)),
        ("Load and bloat", bloat_table(results)),
        ("The price of the limits", limits_table(results)),
        ("The price of the limits, the baseline ref", limits_table(results, "ref_limits")),
    ):
        if table:
            parts.append(f"## {title}\n\n{table}")
    parts.append("## Correctness\n\n" + _correctness(results))
    rounds = rounds_list(results)
    if rounds:
        parts.append("## Rounds\n\n" + rounds)
    drain = results.get("drain")
    if isinstance(drain, dict) and drain.get("tuning"):
        tune = ", ".join(f"c={r['concurrency']}: {r['jobs_per_s']:,.0f}/s" for r in drain["tuning"])
        parts.append(
            f"pgtq worker `--concurrency` tuning ({drain['tuning'][0]['processes']} processes, batch 100,"
            f" the median of each candidate's rounds): {tune}; "
            f"best {drain.get('best_concurrency')}."
        )
    if results.get("async_commit_pass"):
        parts.append(
            "## Second pass: synchronous_commit = off\n\n" + headline_table(results["async_commit_pass"])
        )
    if results.get("profile", {}).get("summary"):
        parts.append("## Profile\n\n" + results["profile"]["summary"])
    errors = scenario_errors(results)
    if errors:
        parts.append("## Scenario errors\n\n" + "\n".join(f"- {k}: {v}" for k, v in errors.items()))
    if charts:
        names = ", ".join(f"`{chart}`" for chart in charts)
        parts.append(f"## Charts\n\nWritten by this run beside its dated report (not kept in git): {names}.")
    return "\n\n".join(parts) + "\n"
