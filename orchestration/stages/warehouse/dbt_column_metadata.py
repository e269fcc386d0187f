"""Column schemas and column-level lineage of the dbt models, computed once per project version.

dagster-dbt derives a model's column schema through the dbt adapter and its column lineage by parsing the
compiled SQL with sqlglot (`fetch_column_metadata`). Both depend on the dbt project and on the columns of the
raw tables it reads, not on the month being built, yet computing them takes as long as the build itself. The
first build of a project version records them in `$CRM_HOME/dbt_column_metadata/<version>.json` (Dagster's
serialisation); every later build attaches the recorded values to its materialisations, so the asset graph
always shows the schema and lineage of the latest materialisation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from dagster import AssetMaterialization, Output, deserialize_value, serialize_value

COLUMN_METADATA_KEYS = ("dagster/column_schema", "dagster/column_lineage")


def project_version(manifest_path: Path, raw_columns: Iterable[tuple[str, str, str]]) -> str:
    """A digest of the dbt manifest and of the raw tables' columns (table, column, type)."""
    digest = hashlib.sha256(Path(manifest_path).read_bytes())
    digest.update(json.dumps(sorted(map(list, raw_columns))).encode())
    return digest.hexdigest()[:16]


class ColumnMetadataStore:
    """Recorded column metadata per asset key for one project version."""

    def __init__(self, folder: Path, version: str) -> None:
        self.path = Path(folder) / f"{version}.json"

    def recorded(self) -> dict[str, dict] | None:
        if not self.path.exists():
            return None
        stored = json.loads(self.path.read_text())
        return {
            key: {name: deserialize_value(value) for name, value in entries.items()} for key, entries in stored.items()
        }

    def attach(self, events: Iterable, recorded: dict[str, dict]) -> Iterator:
        """`events` with the recorded column metadata added to each materialisation."""
        for event in events:
            key = _asset_key(event)
            if key in recorded:
                event = event.with_metadata({**recorded[key], **(event.metadata or {})})
            yield event

    def record(self, events: Iterable) -> Iterator:
        """Pass `events` (with column metadata fetched) through, then store their column metadata."""
        found: dict[str, dict] = {}
        for event in events:
            key = _asset_key(event)
            entries = {
                name: value
                for name, value in (getattr(event, "metadata", None) or {}).items()
                if name in COLUMN_METADATA_KEYS
            }
            if key is not None and entries:
                found[key] = entries
            yield event
        self.path.parent.mkdir(parents=True, exist_ok=True)
        serialised = {
            key: {name: serialize_value(value) for name, value in entries.items()} for key, entries in found.items()
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(serialised, sort_keys=True))
        temporary.replace(self.path)


def _asset_key(event) -> str | None:
    if isinstance(event, AssetMaterialization):
        return event.asset_key.to_user_string()
    if isinstance(event, Output):
        return event.output_name
    return None
