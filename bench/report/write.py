"""Write a run's results: a dated JSON, markdown and charts for every run,
and ``latest.json`` / ``latest.md`` for a run of every scenario.

Only ``latest.json`` and ``latest.md`` of a full run are kept in git
(``bench/.gitignore``); the dated files stay local, for comparing runs, and
earlier full runs are in the history of ``latest.*``. A quick run of every
scenario writes ``latest-quick.*`` instead (git-ignored too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report.charts import draw
from bench.report.markdown import render

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def write(
    results: dict[str, Any], stem: str, folder: Path = RESULTS_DIR, latest: bool = True
) -> dict[str, Path]:
    """Write every output file; return their paths by kind. ``latest``: this
    run measured every scenario, so it also becomes ``latest.*``."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        charts = draw(results, folder, stem)
    except Exception as error:  # a chart failure must not lose the figures
        results["chart_error"] = f"{type(error).__name__}: {error}"
        charts = []
    data = json.dumps(results, indent=1, default=str) + "\n"
    report = render(results, charts)
    names = [stem]
    if latest:
        names.append("latest-quick" if results.get("mode") == "quick" else "latest")
    paths: dict[str, Path] = {}
    for name in names:
        prefix = "" if name == stem else "latest "
        paths[f"{prefix}json"] = folder / f"{name}.json"
        paths[f"{prefix}markdown"] = folder / f"{name}.md"
        paths[f"{prefix}json"].write_text(data)
        paths[f"{prefix}markdown"].write_text(report)
    return paths | {chart: folder / chart for chart in charts}
