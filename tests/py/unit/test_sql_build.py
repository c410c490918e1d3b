"""The SQL build and the test harness, without a database: the extension
files are made from sql/ consistently, `make install-extension` fails when
it cannot write, a pg_prove run killed by a signal fails the suite, and the
wheel's data folder does not shadow a module."""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "scripts"))
import build_extension  # noqa: E402  (scripts/ is not a package)

from pgtq._db.schema import known_versions, schema_version  # noqa: E402


def test_the_extension_files_make_one_line_of_versions() -> None:
    files = build_extension.extension_files()
    chain = build_extension.upgrade_chain()
    assert chain[0] == build_extension.base_version() and chain[-1] == schema_version()
    assert known_versions() == chain
    assert f"pgtq--{schema_version()}.sql" in files, "the current version's install script is built"
    for source, target in itertools.pairwise(chain):
        assert f"pgtq--{source}--{target}.sql" in files


def test_the_install_script_is_the_current_script_with_its_version() -> None:
    built = build_extension.install_script()
    current = (REPO / "sql" / "pgtq.sql").read_text()
    assert "@PGTQ_VERSION@'" not in built
    assert f"SELECT '{schema_version()}'::text" in built
    assert built.replace(f"'{schema_version()}'::text", "'@PGTQ_VERSION@'::text") == current


def test_no_install_script_of_the_current_version_is_committed() -> None:
    """It is built from sql/pgtq.sql; a committed copy would drift."""
    committed = [path.name for path in (REPO / "sql").glob("pgtq--*.sql")]
    assert (
        f"pgtq--{schema_version()}.sql" not in committed or schema_version() == build_extension.base_version()
    )


def test_install_extension_fails_when_it_cannot_write(tmp_path: Path) -> None:
    """Before, `make install-extension` printed a hint and exited 0, and the
    tests then skipped the extension route."""
    missing = tmp_path / "no-such-folder"
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "install-extension", f"EXT_DIR={missing}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert result.returncode != 0
    assert "sudo make install-extension" in result.stderr
    assert not missing.exists()


def test_a_pg_prove_run_killed_by_a_signal_fails_the_suite() -> None:
    """tests/sql/run.py once combined exit codes with max(), so a run killed
    by SIGKILL (return code -9) left the total at 0."""
    spec = importlib.util.spec_from_file_location("pgtap_runner", REPO / "tests" / "sql" / "run.py")
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    assert run.combined_status([0, 0, 0]) == 0
    assert run.combined_status([0, -9, 0]) == 1
    assert run.combined_status([0, 0, 3]) == 1


def test_the_wheel_data_folder_shadows_no_module() -> None:
    """The wheel once put a folder pgtq/_sql/ beside the module pgtq/_sql.py;
    it worked only because Python prefers the module."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    targets = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"].values()
    top_level = {re.sub(r"^pgtq/", "", target).split("/")[0] for target in targets}
    for name in top_level:
        assert not (REPO / "pgtq" / f"{name}.py").exists(), (
            f"pgtq/{name}/ in the wheel would shadow pgtq/{name}.py"
        )
        assert not (REPO / "pgtq" / name).exists(), f"pgtq/{name} exists in the source tree too"


def test_verify_requires_every_older_step_to_be_recorded_as_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import schema_catalog

    chain = build_extension.upgrade_chain()
    monkeypatch.setattr(build_extension, "upgrade_chain", lambda: [*chain, "99.0.0"])
    newest_step = f"pgtq--{chain[-2]}--{chain[-1]}.sql" if len(chain) > 1 else f"pgtq--{chain[0]}.sql"
    recorded = [line for line in schema_catalog.RELEASED.read_text().splitlines() if newest_step not in line]
    released = tmp_path / "released.sha256"
    released.write_text("\n".join(recorded) + "\n")
    monkeypatch.setattr(schema_catalog, "RELEASED", released)
    with pytest.raises(schema_catalog.DriftError, match=re.escape(newest_step)):
        schema_catalog.check_released_scripts()
