"""Row counts of the tables a dbt build materialised, read with one query once dbt has exited.

Every dbt table's materialisation carries its row count (`dagster/row_count`). dagster-dbt can fetch them
(`fetch_row_counts`), but on DuckDB it must first wait for the dbt process to exit (DuckDB admits one writing
process), and it waits in a thread-pool loop that polls without sleeping: one core stayed busy for the whole
build, taken from dbt's own queries on a two-core machine. Here the build's events are read as they stream
(blocking on dbt's output, no polling), and when the stream ends the tables are counted in one query through
the warehouse resource. Views are not counted (counting one runs its whole query), as in dagster-dbt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from dagster import AssetMaterialization, MetadataValue, Output

from orchestration.resources import WarehouseResource

ROW_COUNT_KEY = "dagster/row_count"


def _unique_id(event: Any) -> str | None:
    if not isinstance(event, (AssetMaterialization, Output)):
        return None
    value = (event.metadata or {}).get("unique_id")
    return None if value is None else str(getattr(value, "value", value))


def counted_tables(events: list, manifest: Mapping[str, Any]) -> dict[str, str]:
    """unique_id -> quoted `schema.table` of every materialised dbt node of `events` that is not a view."""
    nodes = manifest.get("nodes", {})
    tables = {}
    for event in events:
        unique_id = _unique_id(event)
        node = nodes.get(unique_id) if unique_id else None
        if node is None or node.get("config", {}).get("materialized") == "view":
            continue
        tables[unique_id] = f'"{node["schema"]}"."{node.get("alias") or node["name"]}"'
    return tables


def with_row_counts(
    events: Iterable,
    manifest: Mapping[str, Any],
    warehouse: WarehouseResource,
    after_stream: Callable[[], None] | None = None,
) -> Iterator:
    """The build's events, each table's materialisation with its row count (`dagster/row_count`).

    The events are yielded after the dbt process has exited (its output stream ended), as dagster-dbt does
    on DuckDB; the counts are one `union all` query of `count(*)` per table. When the build fails (the stream
    raises once dbt has exited), the events before the failure (the failing tests' check results among them)
    are still yielded, with their counts, and then the error is raised. ``after_stream`` runs between the end
    of the stream and the count (e.g. to close the dbt adapter's own connection to the warehouse).
    """
    buffered, failure = [], None
    try:
        for event in events:
            buffered.append(event)
    except Exception as error:  # noqa: BLE001 (re-raised below, after the events it followed)
        failure = error
    if after_stream is not None:
        after_stream()
    tables = counted_tables(buffered, manifest)
    counts: dict[str, int] = {}
    if tables:
        sql = "\nunion all\n".join(
            f"select '{unique_id}' as unique_id, count(*) as row_count from {relation}"
            for unique_id, relation in tables.items()
        )
        counts = dict(warehouse.query(sql).itertuples(index=False, name=None))
    for event in buffered:
        unique_id = _unique_id(event)
        if unique_id in counts:
            event = event.with_metadata(
                {**(event.metadata or {}), ROW_COUNT_KEY: MetadataValue.int(int(counts[unique_id]))}
            )
        yield event
    if failure is not None:
        raise failure
