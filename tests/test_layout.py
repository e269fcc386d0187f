"""The layout a reader relies on: one folder per loop stage, a library without Dagster, every asset in its stage."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "orchestration" / "lib"
STAGES = ("collect", "warehouse", "analyse", "measure", "improve", "design", "execute")
# What the library may not import: Dagster, and the Dagster layer above it.
DAGSTER_LAYER = ("dagster", "dagster_dbt", "orchestration.stages", "orchestration.resources", "orchestration.gates",
                 "orchestration.jobs", "orchestration.runs", "orchestration.partitions", "orchestration.definitions",
                 "orchestration.cli", "orchestration.command", "orchestration.benchmark")  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_library_imports_nothing_of_dagster() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(name for name in _imports(path) if name.startswith(DAGSTER_LAYER))
        for path in LIBRARY.rglob("*.py")
    }
    assert not {path: names for path, names in offenders.items() if names}


def test_each_stage_has_its_folder_with_its_assets() -> None:
    for stage in STAGES:
        assert (ROOT / "orchestration" / "stages" / stage / "assets.py").is_file(), stage


def test_every_asset_is_in_the_group_of_its_stage() -> None:
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == set(STAGES), groups


def test_the_command_line_loads_without_a_dbt_manifest() -> None:
    """`crm-loop prepare` writes the manifest the dbt assets read at import: the CLI may not import them first."""
    probe = (
        "import sys, orchestration.cli\n"
        "loaded = sorted(name for name in sys.modules if name.startswith(('orchestration.definitions', "
        "'orchestration.stages.warehouse')))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
