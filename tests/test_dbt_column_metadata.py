"""Column schema and lineage recorded on a project version's first build are attached to later builds."""

from __future__ import annotations

from dagster import (
    AssetKey,
    AssetMaterialization,
    MetadataValue,
    Output,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

from orchestration.stages.warehouse.dbt_column_metadata import ColumnMetadataStore, project_version

SCHEMA = MetadataValue.table_schema(TableSchema(columns=[TableColumn("customer_id", "varchar")]))
LINEAGE = MetadataValue.column_lineage(
    TableColumnLineage(
        deps_by_column={
            "customer_id": [
                TableColumnDep(asset_key=AssetKey(["staging", "stg_crm__orders"]), column_name="customer_id")
            ]
        }
    )
)


def test_recorded_metadata_is_attached_to_the_next_build(tmp_path):
    store = ColumnMetadataStore(tmp_path, "v1")
    assert store.recorded() is None
    first = [
        Output(
            None,
            output_name="marts/customer_rfm",
            metadata={"dagster/column_schema": SCHEMA, "dagster/column_lineage": LINEAGE, "dagster/row_count": 10},
        ),
        AssetMaterialization(AssetKey(["marts", "fct_orders"]), metadata={"dagster/column_schema": SCHEMA}),
    ]
    assert list(store.record(first)) == first

    recorded = store.recorded()
    later = list(
        store.attach(
            [
                Output(None, output_name="marts/customer_rfm", metadata={"dagster/row_count": 12}),
                AssetMaterialization(AssetKey(["marts", "fct_orders"])),
                Output(None, output_name="marts/cohort_retention"),
            ],
            recorded,
        )
    )
    assert later[0].metadata["dagster/column_lineage"] == LINEAGE
    assert later[0].metadata["dagster/column_schema"] == SCHEMA
    assert later[0].metadata["dagster/row_count"].value == 12  # the build's own metadata is kept
    assert later[1].metadata["dagster/column_schema"] == SCHEMA
    assert "dagster/column_schema" not in (later[2].metadata or {})


def test_the_version_changes_with_the_manifest_and_the_raw_columns(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"nodes": {}}')
    raw = [("orders", "customer_id", "VARCHAR")]
    version = project_version(manifest, raw)
    assert project_version(manifest, list(raw)) == version
    assert project_version(manifest, [*raw, ("orders", "amount", "DOUBLE")]) != version
    manifest.write_text('{"nodes": {"model.x": {}}}')
    assert project_version(manifest, raw) != version
