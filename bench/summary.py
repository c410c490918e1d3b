"""The headline of a run: one row per measured figure, pgtq beside the SQL
ceiling and the peers, with pgtq's ratio to the ceiling."""

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
    for clients in (1, 4):
        add(
            f"enqueue, 1 job per transaction, {clients} client(s): `pgtq.push`, `pgtq.notify = off`,"
            " vs raw INSERT",
            _value(_find(enq, kind="pgtq-sql-quiet", clients=clients)),
            _value(_find(enq, kind="base-insert", clients=clients)),
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
    add(
        "enqueue, bulk 1,000 per call, Python API `PgTq.push_many` vs the ceiling's best form",
        _value(_find(enq, kind="pgtq-python-many")),
        bulk_base or None,
    )
    drained = results.get("sizes", {}).get("drain_jobs")
    jobs = f"{drained:,} " if drained else ""
    for processes in (1, 2):
        add(
            f"drain {jobs}no-op jobs, real worker, best settings, {processes} process(es)"
            " (ceiling: batch 100)",
            _value(_find(drain, system="pgtq", label="best", processes=processes, deep=None)),
            _value(_find(drain, system="baseline", label="batch 100", processes=processes, deep=None)),
            **{
                peer: _peer(results, peer, "drain", label="best", processes=processes, deep=None)
                for peer in PEERS
            },
        )
    deep = results.get("sizes", {}).get("deep_drain_jobs")
    add(
        f"drain {f'{deep:,} ' if deep else ''}no-op jobs (a deep backlog), real worker, best settings,"
        " 2 process(es) (ceiling: batch 100)",
        _value(_find(drain, system="pgtq", label="best", processes=2, deep=True)),
        _value(_find(drain, system="baseline", label="batch 100", processes=2, deep=True)),
        **{peer: _peer(results, peer, "drain", label="best", processes=2, deep=True) for peer in PEERS},
    )
    for processes in (1, 2):
        add(
            f"drain, real worker, defaults, {processes} process(es) (ceiling: batch 1)",
            _value(_find(drain, system="pgtq", label="defaults", processes=processes)),
            _value(_find(drain, system="baseline", label="batch 1", processes=processes)),
            **{peer: _peer(results, peer, "drain", label="defaults", processes=processes) for peer in PEERS},
        )
    add(
        "SQL-only drain, batch 1: `pgtq.pop` + `pgtq.complete` vs hand-written claim",
        _value(_find(sql, kind="pgtq-each", batch=1)),
        _value(_find(sql, kind="baseline", batch=1)),
    )
    for kind, how in (
        ("pgtq-complete-many", "`pgtq.complete_many`"),
        ("pgtq-unnest", "`pgtq.complete` over `unnest` in one statement"),
        ("pgtq-pipeline", "pipelined"),
        ("pgtq-each", "one per job"),
    ):
        add(
            f"SQL-only drain, batch 100, completions {how}",
            _value(_find(sql, kind=kind, batch=100)),
            _value(_find(sql, kind="baseline", batch=100)),
        )
    add(
        "SQL-only drain, batch 100, `pgtq.complete_many_and_pop` (a batch completed and the next claimed"
        " in one transaction) vs the hand-written pair (two)",
        _value(_find(sql, kind="pgtq-complete-and-pop", batch=100)),
        _value(_find(sql, kind="baseline", batch=100)),
    )
    wake = _list(results, "wakeup")
    spans = [("enqueue_to_start", p) for p in ("p50_ms", "p95_ms", "p99_ms")]
    spans += [("commit_to_start", p) for p in ("p50_ms", "p99_ms")]
    for span, pct in spans:
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
                "pgtq": _latency(wake, span, pct),
                "ceiling": _latency(wake, span, pct, system="baseline"),
                "ratio": None,
                **peers,
            }
        )
    for span, pct in (("enqueue_to_start", "p50_ms"), ("enqueue_to_start", "p99_ms")):
        loop = _latency(wake, span, pct, system="pgtq-loop")
        if loop is not None:  # runs before the loop was measured have none
            rows.append(
                {
                    "metric": f"wake-up, enqueue -> handler start, {pct[:3]}, pgtq's SQL in one thread",
                    "unit": "ms",
                    "pgtq": loop,
                    "ceiling": _latency(wake, span, pct, system="baseline"),
                    "ratio": None,
                    **{peer: None for peer in PEERS},
                }
            )
    return rows


# pgtq's figures compared with a --baseline ref: (label, scenario, match).
_REF_ROWS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("enqueue, 1 job per transaction, 1 client (`pgtq.push`)", "enqueue", {"kind": "pgtq-sql", "clients": 1}),
    (
        "enqueue, 1 job per transaction, 4 clients (`pgtq.push`)",
        "enqueue",
        {"kind": "pgtq-sql", "clients": 4},
    ),
    (
        "enqueue, 1 job per transaction, 4 clients, `pgtq.notify = off`",
        "enqueue",
        {"kind": "pgtq-sql-quiet", "clients": 4},
    ),
    ("enqueue, 1 job per transaction, 1 client, Python `PgTq.push`", "enqueue", {"kind": "pgtq-python"}),
    ("enqueue, bulk 1,000 per call (`pgtq.push_many`)", "enqueue", {"kind": "pgtq-push-many"}),
    ("enqueue, bulk 1,000 per call, Python `PgTq.push_many`", "enqueue", {"kind": "pgtq-python-many"}),
    (
        "drain, real worker, best settings, 1 process",
        "drain",
        {"label": "best", "processes": 1, "deep": None},
    ),
    (
        "drain, real worker, best settings, 2 processes",
        "drain",
        {"label": "best", "processes": 2, "deep": None},
    ),
    (
        "drain of a deep backlog, real worker, best settings, 2 processes",
        "drain",
        {"label": "best", "processes": 2, "deep": True},
    ),
    ("drain, real worker, defaults, 1 process", "drain", {"label": "defaults", "processes": 1}),
    ("drain, real worker, defaults, 2 processes", "drain", {"label": "defaults", "processes": 2}),
)


# pgtq's wake-up latencies compared with a --baseline ref: (label, span, percentile).
_REF_WAKEUP_ROWS: tuple[tuple[str, str, str], ...] = (
    ("wake-up, enqueue -> handler start, p50 (ms)", "enqueue_to_start", "p50_ms"),
    ("wake-up, enqueue -> handler start, p99 (ms)", "enqueue_to_start", "p99_ms"),
    ("wake-up, commit -> handler start, p50 (ms)", "commit_to_start", "p50_ms"),
    ("wake-up, commit -> handler start, p99 (ms)", "commit_to_start", "p99_ms"),
)


def _latency(rows: list[dict[str, Any]], span: str, pct: str, system: str = "pgtq") -> float | None:
    """A wake-up latency (ms) of ``system`` from a wake-up scenario's rows."""
    row = _find(rows, system=system)
    value = row.get(span, {}).get(pct) if row else None
    return float(value) if isinstance(value, int | float) else None


def against_ref(results: dict[str, Any]) -> list[dict[str, Any]]:
    """This checkout's pgtq figures beside a ``--baseline`` ref's (jobs/s,
    and the wake-up's milliseconds), with their ratio; rows either side did
    not measure are left out."""
    rows = []
    for metric, scenario, match in _REF_ROWS:
        this = _value(_find(_list(results, scenario), system="pgtq", **match))
        ref = _value(_find(_list(results, f"ref_{scenario}"), system="pgtq", **match))
        if this is not None or ref is not None:
            rows.append({"metric": metric, "this": this, "ref": ref, "ratio": ratio(this, ref)})
    for metric, span, pct in _REF_WAKEUP_ROWS:
        this = _latency(_list(results, "wakeup"), span, pct)
        ref = _latency(_list(results, "ref_wakeup"), span, pct)
        if this is not None and ref is not None:
            rows.append({"metric": metric, "this": this, "ref": ref, "ratio": ratio(this, ref)})
    return rows


def steady_sizes(sustained: dict[str, Any]) -> tuple[int, int] | None:
    """The largest table + indexes size (bytes) in the earlier and in the
    later part of a sustained run's steady phase (40-70% and 70-100% of the
    time before the held snapshot), or None when the run is too short."""
    end = sustained.get("snapshot", {}).get("start_s") or sustained.get("duration_s", 0)

    def total(s: dict[str, Any]) -> int:
        return int(s["table_bytes"] + s["index_bytes"])

    sizes = sustained.get("sizes", [])
    early = [total(s) for s in sizes if end * 0.4 <= s["t"] < end * 0.7]
    late = [total(s) for s in sizes if end * 0.7 <= s["t"] < end]
    return (max(early), max(late)) if early and late else None


def scenario_errors(results: dict[str, Any]) -> dict[str, str]:
    """The scenarios that broke, with their error."""
    errors = {
        name: value["error"]
        for name, value in results.items()
        if isinstance(value, dict) and "error" in value
    }
    peers = results.get("peers", {})
    for peer, data in peers.items() if isinstance(peers, dict) else []:
        if isinstance(data, dict) and "error" in data:
            errors[f"peers: {peer}"] = data["error"]
    return errors


def correctness_failures(results: dict[str, Any]) -> list[str]:
    """Every measurement whose jobs were not each handled exactly once."""
    bad: list[str] = []
    for name, value in results.items():
        if isinstance(value, dict) and "correct" in value:
            rows = [value]
        else:
            rows = value.get("runs", []) if isinstance(value, dict) else value
        if not isinstance(rows, list):
            continue
        for row in rows:
            if isinstance(row, dict) and "correct" in row and not row["correct"].get("ok"):
                what = " ".join(str(row[key]) for key in ("system", "kind", "label") if row.get(key))
                bad.append(f"{name}: {what}".rstrip(": "))
    for peer, data in results.get("peers", {}).items():
        for scenario, rows in data.items() if isinstance(data, dict) else []:
            for row in rows if isinstance(rows, list) else [rows]:
                if isinstance(row, dict) and "correct" in row and not row["correct"].get("ok"):
                    bad.append(f"peers: {peer} {scenario}")
    return bad
