"""Where the dbt project and the dbt executable are (importable before the dbt manifest exists)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


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
