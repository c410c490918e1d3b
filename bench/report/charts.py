"""PNG charts of a run (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.summary import PEERS, headline

SERIES = ("pgtq", "ceiling", *PEERS)
LABELS = {
    "pgtq": "pgtq",
    "ceiling": "SQL ceiling",
    "procrastinate": "Procrastinate",
    "pgqueuer": "PgQueuer",
    "rq": "RQ",
}
COLOURS = {
    "pgtq": "#1f77b4",
    "ceiling": "#7f7f7f",
    "procrastinate": "#ff7f0e",
    "pgqueuer": "#2ca02c",
    "rq": "#d62728",
}


def _bars(rows: list[dict[str, Any]], title: str, unit: str, path: Path, log_scale: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [s for s in SERIES if any(row.get(s) for row in rows)]
    fig, ax = plt.subplots(figsize=(12, 0.55 * len(rows) * max(2, len(series)) / 2 + 1.5))
    height = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        values = [row.get(name) or 0 for row in rows]
        positions = [r + i * height for r in range(len(rows))]
        ax.barh(positions, values, height=height, label=LABELS[name], color=COLOURS[name])
    ax.set_yticks([r + height * (len(series) - 1) / 2 for r in range(len(rows))])
    ax.set_yticklabels([row["metric"].replace("`", "")[:70] for row in rows], fontsize=8)
    ax.invert_yaxis()
    if log_scale:
        ax.set_xscale("log")
    ax.set_xlabel(unit)
    ax.set_title(title)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _sustained(results: dict[str, Any], path: Path) -> bool:
    rows = results.get("sustained")
    if not isinstance(rows, list) or not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 3.2 * len(rows)), squeeze=False)
    for ax, row in zip(axes[:, 0], rows, strict=True):
        timeline = row["throughput_timeline"]
        ax.plot(
            range(len(timeline)), timeline, label="handled per second", color=COLOURS.get(row["system"], "k")
        )
        ax.axhline(row["offered_jobs_per_s"], linestyle="--", color="grey", label="offered")
        backlog = row.get("backlog", [])
        if backlog:
            ax2 = ax.twinx()
            ax2.plot(
                [t for t, _ in backlog], [n for _, n in backlog], color="red", alpha=0.5, label="backlog"
            )
            ax2.set_ylabel("backlog (ready jobs)")
        snap = row.get("snapshot", {})
        if snap.get("held"):
            ax.axvspan(snap["start_s"], snap["end_s"], color="orange", alpha=0.2, label="held snapshot")
        ax.set_title(f"{LABELS.get(row['system'], row['system'])}: sustained load, pruning on")
        ax.set_xlabel("seconds")
        ax.set_ylabel("jobs/s")
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def draw(results: dict[str, Any], folder: Path, stem: str) -> list[str]:
    """Write the charts; return their file names (relative to ``folder``)."""
    rows = headline(results)
    names = []
    throughput = [row for row in rows if row["unit"] == "jobs/s"]
    latency = [row for row in rows if row["unit"] == "ms"]
    if any(row.get(series) for row in throughput for series in SERIES):
        name = f"{stem}-throughput.png"
        _bars(
            throughput, "Throughput (higher is better)", "jobs/s (log scale)", folder / name, log_scale=True
        )
        names.append(name)
    if any(row.get("pgtq") for row in latency):
        name = f"{stem}-latency.png"
        _bars(
            latency, "Wake-up latency, enqueue -> handler start (lower is better)", "ms", folder / name, False
        )
        names.append(name)
    name = f"{stem}-sustained.png"
    if _sustained(results, folder / name):
        names.append(name)
    return names
