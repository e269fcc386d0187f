"""Where the dbt project and the dbt executable are (importable before the dbt manifest exists)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"

# The month a dbt build is as of, read by the project's `build_month()` (dbt_project/macros/as_of_month.sql).
BUILD_MONTH_VARIABLE = "CRM_AS_OF_MONTH"


def dbt_executable() -> str:
    """The dbt installed beside this Python (the venv's), so runs work without an activated environment."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def manifest_is_stale(project_dir: Path = DBT_PROJECT_DIR) -> bool:
    """The manifest is missing or older than a file of the dbt project (models, seeds, macros, tests, config)."""
    manifest = project_dir / "target" / "manifest.json"
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "seeds", "macros", "tests", "snapshots"):
        sources.extend(path for path in (project_dir / folder).rglob("*") if path.is_file())
    return any(path.exists() and path.stat().st_mtime > built for path in sources)


@contextmanager
def dbt_build_month(month: str) -> Iterator[None]:
    """$CRM_AS_OF_MONTH is `month` (YYYY-MM-DD, a first of month) inside, and as it was before after (unset if it
    was): the month the dbt commands started inside build as of. A dbt subprocess takes the environment when it
    starts, dbt in this process when each command starts.

    The month is not a `--vars` value because dbt keeps its parsed project from one run to the next only while
    the vars stay the same; dbt reads this variable only when the models run, never while parsing, so a new
    month costs no parse (dbt_project/macros/as_of_month.sql says more).
    """
    before = os.environ.get(BUILD_MONTH_VARIABLE)
    os.environ[BUILD_MONTH_VARIABLE] = month
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(BUILD_MONTH_VARIABLE, None)
        else:
            os.environ[BUILD_MONTH_VARIABLE] = before
