"""The headline of a run: one row per measured figure, pgtq beside the SQL
ceiling and the peers, with the ratio and each target of issue 5."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.stats import ratio

PEERS = ("procrastinate", "pgqueuer", "rq")


def _find(rows: Iterable[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if all(row.get(key) == value for key, value in match.items()):
            return row
    return None


def _value(row: dict[str, Any] | None, key: str = "jobs_per_s") -> float | None:
    if row is None:
        return None
    value = row.get(key)
    return float(value) if isinstance(value, int | float) else None


def _list(results: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = results.get(name)
    if isinstance(value, dict):
        value = value.get("runs", [])
    return value if isinstance(value, list) else []


def _peer(results: dict[str, Any], peer: str, scenario: str, **match: Any) -> float | None:
    data = results.get("peers", {}).get(peer, {})
    rows = data.get(scenario, []) if isinstance(data, dict) else []
    return _value(_find(rows, **match)) if isinstance(rows, list) else None


def headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the main table."""
    enq, drain, sql = _list(results, "enqueue"), _list(results, "drain"), _list(results, "sql_drain")
    rows: list[dict[str, Any]] = []

    def add(
        metric: str, pgtq: float | None, ceiling: float | None, unit: str = "jobs/s", **peers: Any
    ) -> None:
        rows.append(
            {
                "metric": metric,
                "unit": unit,
                "pgtq": pgtq,
                "ceiling": ceiling,
                "ratio": ratio(pgtq, ceiling),
                **{peer: peers.get(peer) for peer in PEERS},
            }
        )

    for clients in (1, 4):
        add(
            f"enqueue, 1 job per transaction, {clients} client(s): `pgtq.push` vs raw INSERT",
            _value(_find(enq, kind="pgtq-sql", clients=clients)),
            _value(_find(enq, kind="base-insert", clients=clients)),
            **{peer: _peer(results, peer, "enqueue", kind="single", clients=clients) for peer in PEERS},
        )
    add(
        "enqueue, 1 job per transaction, 1 client, Python API `PgTq.push`",
        _value(_find(enq, kind="pgtq-python", clients=1)),
        _value(_find(enq, kind="base-insert", clients=1)),
    )
    bulk_pgtq = max(
        (_value(_find(enq, kind=k)) or 0.0 for k in ("pgtq-push-many", "pgtq-unnest", "pgtq-executemany")),
        default=None,
    )
    bulk_base = max((_value(_find(enq, kind=k)) or 0.0 for k in ("base-unnest", "base-copy")), default=None)
    add(
        "enqueue, bulk 1,000 per call (best form each)",
        bulk_pgtq or None,
        bulk_base or None,
        **{peer: _peer(results, peer, "enqueue", kind="bulk") for peer in PEERS},
    )
    for processes in (1, 2):
        add(
            f"drain 20k no-op jobs, real worker, best settings, {processes} process(es) (ceiling: batch 100)",
            _value(_find(drain, system="pgtq", label="best", processes=processes)),
            _value(_find(drain, system="baseline", label="batch 100", processes=processes)),
            **{peer: _peer(results, peer, "drain", processes=processes) for peer in PEERS},
        )
    for processes in (1, 2):
        add(
            f"drain, real worker, defaults, {processes} process(es) (ceiling: batch 1)",
            _value(_find(drain, system="pgtq", label="defaults", processes=processes)),
            _value(_find(drain, system="baseline", label="batch 1", processes=processes)),
        )
    add(
        "SQL-only drain, batch 1: `pgtq.pop` + `pgtq.complete` vs hand-written claim",
        _value(_find(sql, kind="pgtq-each", batch=1)),
        _value(_find(sql, kind="baseline", batch=1)),
    )
    for kind, how in (
        ("pgtq-unnest", "one statement"),
        ("pgtq-pipeline", "pipelined"),
        ("pgtq-each", "one per job"),
    ):
        add(
            f"SQL-only drain, batch 100, completions {how}",
            _value(_find(sql, kind=kind, batch=100)),
            _value(_find(sql, kind="baseline", batch=100)),
        )
    wake = _list(results, "wakeup")
    spans = [("enqueue_to_start", p) for p in ("p50_ms", "p95_ms", "p99_ms")]
    spans += [("commit_to_start", p) for p in ("p50_ms", "p99_ms")]
    for span, pct in spans:
        pg = _find(wake, system="pgtq")
        base = _find(wake, system="baseline")
        peers = {}
        for peer in PEERS:
            data = results.get("peers", {}).get(peer, {})
            w = data.get("wakeup") if isinstance(data, dict) else None
            peers[peer] = w[span][pct] if isinstance(w, dict) and span in w else None
        label = "enqueue -> handler start" if span == "enqueue_to_start" else "commit -> handler start"
        rows.append(
            {
                "metric": f"wake-up, {label}, {pct[:3]}",
                "unit": "ms",
                "pgtq": pg[span][pct] if pg else None,
                "ceiling": base[span][pct] if base else None,
                "ratio": None,
                **peers,
            }
        )
    return rows


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 5: the measured value and whether it is met."""
    enq, drain, sql = _list(results, "enqueue"), _list(results, "drain"), _list(results, "sql_drain")
    out: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        if "None" in measured or "n/a" in measured or " 0.0 vs 0.0 " in f" {measured} ":
            measured, met = "not measured in this run", None
        out.append({"target": target, "measured": measured, "met": met})

    pg2 = _value(_find(drain, system="pgtq", label="best", processes=2))
    base2 = _value(_find(drain, system="baseline", label="batch 100", processes=2))
    peer_best = max(
        (v for v in (_peer(results, peer, "drain", processes=2) for peer in PEERS) if v), default=None
    )
    if peer_best:
        r = ratio(pg2, peer_best)
        add(
            "worker drain >= 1.5x the best peer (2 processes)",
            f"{r}x ({pg2} vs {peer_best} jobs/s)",
            bool(r and r >= 1.5),
        )
    else:
        add("worker drain >= 1.5x the best peer (2 processes)", "peers not run (make bench-peers)", None)
    r = ratio(pg2, base2)
    add(
        "worker drain >= 80% of the SQL ceiling at batch 100 (2 processes)",
        f"{_pct(r)} ({pg2} vs {base2} jobs/s)",
        bool(r and r >= 0.8),
    )
    for batch, kinds in ((1, ("pgtq-each",)), (100, ("pgtq-complete-many", "pgtq-unnest"))):
        kind = next((k for k in kinds if _find(sql, kind=k, batch=batch)), kinds[-1])
        p, b = _value(_find(sql, kind=kind, batch=batch)), _value(_find(sql, kind="baseline", batch=batch))
        r = ratio(p, b)
        add(
            f"SQL API >= 90% of the hand-written claim, batch {batch} ({kind})",
            f"{_pct(r)} ({p} vs {b} jobs/s)",
            bool(r and r >= 0.9),
        )
    pg = _find(_list(results, "wakeup"), system="pgtq")
    if pg:
        p50, p99 = pg["enqueue_to_start"]["p50_ms"], pg["enqueue_to_start"]["p99_ms"]
        add("wake-up p50 <= 2 ms", f"{p50} ms", p50 <= 2.0)
        add("wake-up p99 <= 5 ms", f"{p99} ms", p99 <= 5.0)
    p, b = _value(_find(enq, kind="pgtq-sql", clients=1)), _value(_find(enq, kind="base-insert", clients=1))
    r = ratio(p, b)
    add(
        "single push >= 80% of a raw INSERT per transaction",
        f"{_pct(r)} ({p} vs {b} jobs/s)",
        bool(r and r >= 0.8),
    )
    bulk_pgtq = max(
        (_value(_find(enq, kind=k)) or 0.0 for k in ("pgtq-push-many", "pgtq-unnest", "pgtq-executemany")),
        default=0.0,
    )
    bulk_base = max((_value(_find(enq, kind=k)) or 0.0 for k in ("base-unnest", "base-copy")), default=0.0)
    r = ratio(bulk_pgtq, bulk_base)
    add(
        "bulk push at least as fast as the raw batch",
        f"{_pct(r)} ({bulk_pgtq} vs {bulk_base} jobs/s)",
        bool(r and r >= 1.0),
    )
    sus = _find(_list(results, "sustained"), system="pgtq")
    if sus:
        r = sus.get("last_vs_first")
        add(
            "sustained: last interval within 20% of the first",
            f"{r} (offered {sus['offered_jobs_per_s']}/s)",
            bool(r and r >= 0.8),
        )
        add(
            "sustained: table + indexes bounded with pruning on (before the held snapshot)",
            *_bounded(sus),
        )
        snap = sus.get("snapshot", {})
        if snap.get("held"):
            after = max((s["table_bytes"] + s["index_bytes"] for s in sus.get("sizes", [])), default=0)
            add(
                "held snapshot: throughput kept, backlog recovers",
                f"{snap.get('jobs_per_s_before')} -> {snap.get('jobs_per_s_during')} jobs/s during it, "
                f"peak backlog {snap.get('peak_backlog')}, recovered in {snap.get('recovery_s')} s; "
                f"table + indexes peak {after // 1024} KiB",
                None,
            )
    return out


def _bounded(sus: dict[str, Any]) -> tuple[str, bool | None]:
    """Sizes in the second half of the steady part (before the snapshot)
    against the first half: growth of more than 50% counts as unbounded."""
    end = sus.get("snapshot", {}).get("start_s") or sus.get("duration_s", 0)

    def total(s: dict[str, Any]) -> int:
        return int(s["table_bytes"] + s["index_bytes"])

    early = [total(s) for s in sus.get("sizes", []) if end * 0.4 <= s["t"] < end * 0.7]
    late = [total(s) for s in sus.get("sizes", []) if end * 0.7 <= s["t"] < end]
    if not early or not late:
        return "too short to tell", None
    return (
        f"max {max(early) // 1024} KiB at {end * 0.4:.0f}-{end * 0.7:.0f} s, "
        f"{max(late) // 1024} KiB at {end * 0.7:.0f}-{end:.0f} s"
    ), max(late) <= 1.5 * max(early)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"
