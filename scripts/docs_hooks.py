"""MkDocs hook of the documentation site (mkdocs.yml: ``hooks``).

The SQL reference (docs/reference/sql.md) holds a marker
``<!-- guarantees: NAME -->`` in each function's section; this hook puts
there the ``-- Guarantees:`` comment that stands above
``CREATE FUNCTION pgtq.NAME`` (or ``PROCEDURE``) in sql/pgtq.sql, so each
guarantee is written once, beside the code it describes. A marker naming
a function without such a comment fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SQL = Path(__file__).resolve().parent.parent / "sql" / "pgtq.sql"
MARKER = re.compile(r"<!-- guarantees: ([a-z_]+) -->")
DEFINITION = re.compile(r"^CREATE (?:OR REPLACE )?(?:FUNCTION|PROCEDURE) pgtq\.([a-z][a-z_]*)\(")


def guarantees(sql: str) -> dict[str, list[str]]:
    """Each public function's ``-- Guarantees:`` comment, as its lines
    without the ``-- `` prefix."""
    lines = sql.splitlines()
    found: dict[str, list[str]] = {}
    for number, line in enumerate(lines):
        match = DEFINITION.match(line)
        if match is None:
            continue
        start = number
        while start > 0 and lines[start - 1].startswith("--"):
            start -= 1
        comment = [entry[3:] if entry.startswith("-- ") else entry[2:] for entry in lines[start:number]]
        if comment and comment[0].startswith("Guarantees:"):
            comment[0] = comment[0].removeprefix("Guarantees:").strip()
            found[match.group(1)] = comment
    return found


def as_markdown(comment: list[str]) -> str:
    """The comment as Markdown: prose lines joined into a paragraph, and
    runs of indented lines (lists, columns) kept as they are in a block."""
    parts: list[str] = []
    prose: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if prose:
            parts.append(" ".join(prose))
            prose.clear()
        if block:
            parts.append("```text\n" + "\n".join(block) + "\n```")
            block.clear()

    for line in comment:
        if line.startswith("  "):
            if prose:
                flush()
            block.append(line)
        else:
            if block:
                flush()
            prose.append(line.strip())
    flush()
    body = "\n\n".join(parts)
    return '!!! success "Guarantees"\n\n' + "\n".join(
        "    " + line if line else "" for line in body.splitlines()
    )


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Fill the guarantee markers of a page from sql/pgtq.sql."""
    if "<!-- guarantees:" not in markdown:
        return markdown
    comments = guarantees(SQL.read_text())

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in comments:
            raise ValueError(f"{page.file.src_path}: pgtq.{name} has no '-- Guarantees:' comment in {SQL}")
        return as_markdown(comments[name])

    return MARKER.sub(fill, markdown)
