"""CHANGELOG.md keeps up with the schema, without a database: every version
that sql/ installs (the oldest release and the target of each upgrade
script, which includes pgtq.control's version) has its `## X.Y.Z` section,
no section names a version sql/ does not know, and the sections go from the
newest version down."""

from __future__ import annotations

import re
from pathlib import Path

from pgtq._db.schema import known_versions, parse_version, schema_version

CHANGELOG = Path(__file__).resolve().parents[3] / "CHANGELOG.md"
# `## 0.33.0` or `## 0.33.0 — 2026-12-07` (the date its upgrade script was added).
VERSION_HEADING = re.compile(r"(\d+(?:\.\d+)+)(?: — \d{4}-\d{2}-\d{2})?")
UNRELEASED = "Unreleased"


def section_headings() -> list[str]:
    """The text of every `## ` heading, in the file's order."""
    return re.findall(r"^## (.*)$", CHANGELOG.read_text(), re.MULTILINE)


def documented_versions() -> list[str]:
    return [match.group(1) for heading in section_headings() if (match := VERSION_HEADING.fullmatch(heading))]


def test_every_section_is_a_version_or_the_unreleased_one_on_top() -> None:
    headings = section_headings()
    odd = [text for text in headings if text != UNRELEASED and not VERSION_HEADING.fullmatch(text)]
    assert not odd, f"CHANGELOG.md: write '## X.Y.Z' or '## X.Y.Z — YYYY-MM-DD', not {odd}"
    assert UNRELEASED not in headings[1:], "'## Unreleased' comes first, above the newest version"


def test_every_schema_version_has_its_section() -> None:
    documented = documented_versions()
    missing = [version for version in [*known_versions(), schema_version()] if version not in documented]
    assert not missing, f"CHANGELOG.md has no section for {missing}: each schema version adds its '## X.Y.Z'"
    unknown = [version for version in documented if version not in known_versions()]
    assert not unknown, f"CHANGELOG.md has sections for versions sql/ does not know: {unknown}"


def test_the_sections_go_from_the_newest_version_down() -> None:
    documented = documented_versions()
    assert documented == sorted(set(documented), key=parse_version, reverse=True), (
        "CHANGELOG.md: one section per version, newest first"
    )
