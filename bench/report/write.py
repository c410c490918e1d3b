"""Write a run's results: ``<date>.json``, ``<date>.md``, ``latest.md`` and charts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.report.charts import draw
from bench.report.markdown import render

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def write(
    results: dict[str, Any], stem: str, folder: Path = RESULTS_DIR, latest: bool = True
) -> dict[str, Path]:
    """Write every output file; return their paths. ``latest.md`` only for a
    run of every scenario."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    try:
        charts = draw(results, folder, stem)
    except Exception as error:  # a chart failure must not lose the figures
        results["chart_error"] = f"{type(error).__name__}: {error}"
        charts = []
    md_path = folder / f"{stem}.md"
    md_path.write_text(render(results, charts))
    paths = {"json": json_path, "markdown": md_path, **{c: folder / c for c in charts}}
    if latest:
        paths["latest"] = folder / ("latest-quick.md" if results.get("mode") == "quick" else "latest.md")
        shutil.copyfile(md_path, paths["latest"])
    return paths
