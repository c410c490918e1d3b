#!/usr/bin/env python3
"""Build pgtq's extension files from ``sql/`` (see sql/README.md).

    build_extension.py DIR       write the files into DIR (an extension folder)
    build_extension.py --list    print what would be written, one name a line

The files are ``pgtq.control``, the released full install script of the
oldest version (the base of the upgrade chain), every hand-written upgrade
script ``pgtq--A--B.sql``, and the install script of the current version,
made from ``sql/pgtq.sql`` by putting that version in place of
``@PGTQ_VERSION@``. The version lives in ``pgtq.control`` alone.

Standard library only: ``make install-extension`` and the test harness
(scripts/pgcluster.py) run it before any virtualenv exists.
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SQL = REPO / "sql"
CONTROL = REPO / "pgtq.control"
CURRENT_SCRIPT = SQL / "pgtq.sql"
VERSION_MARK = "'@PGTQ_VERSION@'"  # the literal pgtq.version() returns

_FULL_SCRIPT = re.compile(r"^pgtq--(\d+(?:\.\d+)*)\.sql$")
_UPGRADE_SCRIPT = re.compile(r"^pgtq--(\d+(?:\.\d+)*)--(\d+(?:\.\d+)*)\.sql$")


class BuildError(Exception):
    """The files of sql/ do not make a consistent extension."""


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def current_version() -> str:
    """The control file's ``default_version``."""
    match = re.search(r"^\s*default_version\s*=\s*'([^']+)'", CONTROL.read_text(), re.MULTILINE)
    if match is None:
        raise BuildError(f"{CONTROL} has no default_version")
    return match.group(1)


def base_version() -> str:
    """The version of the one committed full install script: the oldest
    release, from which every upgrade starts."""
    full = [m.group(1) for p in SQL.iterdir() if (m := _FULL_SCRIPT.match(p.name))]
    if len(full) != 1:
        raise BuildError(
            f"sql/ must hold exactly one full install script (the oldest release), found {sorted(full)}; "
            "the current version's script is built from sql/pgtq.sql, never committed"
        )
    return full[0]


def upgrade_steps() -> dict[str, str]:
    """Each hand-written upgrade step: from-version -> to-version."""
    steps: dict[str, str] = {}
    for path in SQL.iterdir():
        match = _UPGRADE_SCRIPT.match(path.name)
        if match is None:
            continue
        source, target = match.groups()
        if source in steps:
            raise BuildError(f"two upgrade scripts start at {source}: one line of versions only")
        steps[source] = target
    return steps


def upgrade_chain() -> list[str]:
    """The versions from the oldest release to the current one, in order."""
    chain = [base_version()]
    steps = upgrade_steps()
    while chain[-1] in steps:
        chain.append(steps[chain[-1]])
        if version_key(chain[-1]) <= version_key(chain[-2]):
            raise BuildError(f"upgrade {chain[-2]} -> {chain[-1]} goes backwards")
    if chain[-1] != current_version():
        raise BuildError(
            f"the upgrade scripts lead from {chain[0]} to {chain[-1]}, "
            f"but pgtq.control says {current_version()}: add sql/pgtq--{chain[-1]}--{current_version()}.sql"
        )
    if len(chain) - 1 != len(steps):
        raise BuildError(f"upgrade scripts off the line {' -> '.join(chain)}: {sorted(steps.items())}")
    return chain


def install_script() -> str:
    """The full install script of the current version, from sql/pgtq.sql."""
    text = CURRENT_SCRIPT.read_text()
    if text.count(VERSION_MARK) != 1:
        raise BuildError(f"sql/pgtq.sql must hold the literal {VERSION_MARK} exactly once, in pgtq.version()")
    return text.replace(VERSION_MARK, f"'{current_version()}'")


def extension_files() -> dict[str, str]:
    """File name -> content of everything an extension folder needs."""
    chain = upgrade_chain()
    files = {"pgtq.control": CONTROL.read_text()}
    files[f"pgtq--{chain[0]}.sql"] = (SQL / f"pgtq--{chain[0]}.sql").read_text()
    for source, target in itertools.pairwise(chain):
        name = f"pgtq--{source}--{target}.sql"
        files[name] = (SQL / name).read_text()
    if len(chain) > 1:
        files[f"pgtq--{chain[-1]}.sql"] = install_script()
    return files


def write(directory: Path) -> list[str]:
    """Write the extension files into ``directory``; returns their names."""
    files = extension_files()
    if not directory.is_dir():
        raise BuildError(f"{directory} is not a folder")
    for name, text in files.items():
        target = directory / name
        try:
            target.write_text(text)
            target.chmod(0o644)
        except OSError as error:
            raise BuildError(f"cannot write {target}: {error.strerror}") from error
    return sorted(files)


def main(argv: list[str]) -> int:
    try:
        if argv == ["--list"]:
            print("\n".join(sorted(extension_files())))
            return 0
        if len(argv) != 1 or argv[0].startswith("-"):
            print(__doc__, file=sys.stderr)
            return 2
        names = write(Path(argv[0]))
    except BuildError as error:
        print(f"build_extension: error: {error}", file=sys.stderr)
        return 1
    print(f"pgtq extension {current_version()} installed into {argv[0]}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
