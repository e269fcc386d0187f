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
