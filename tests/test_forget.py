"""`crm-loop forget CUSTOMER_ID`: nothing personal of the customer remains in the warehouse or the exports,
the anonymised aggregates keep their values, the erasure is recorded, and a later delivery of the same
customer arrives anonymised."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

CUSTOMERS = 500
MONTH = date(2025, 1, 1)

pytestmark = pytest.mark.slow

AGGREGATES = {
    "revenue": "select sum(revenue) as v from marts.fct_orders",
    "orders": "select count(*) as v from marts.fct_orders",
    "customers": "select count(*) as v from marts.dim_customers",
    "buyers": "select count(distinct customer_id) as v from marts.fct_orders",
    "equity": "select sum(clv) as v from analytics.customer_scores",
    "test_group": "select count(*) as v from campaigns.campaign_plan where \"group\" = 'test'",
    "contacts": "select count(*) as v from campaigns.campaign_deliveries",
    "raw_orders": "select count(*) as v, sum(amount) as w from raw.orders",
}


def _read(warehouse: Path, sql: str, parameters: list | None = None) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql, parameters or []).df()


def _mentions(warehouse: Path, needles: dict[str, str]) -> dict[str, list[str]]:
    """For each needle, every table.column of the warehouse holding a value that contains it."""
    found: dict[str, list[str]] = {name: [] for name in needles}
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        columns = connection.execute(
            """
            select c.table_schema, c.table_name, list(c.column_name)
            from information_schema.columns as c
            join information_schema.tables as t using (table_catalog, table_schema, table_name)
            where t.table_type = 'BASE TABLE' and c.data_type = 'VARCHAR'
            group by all
            """
        ).fetchall()
        for schema, table, names in columns:
            checks = [
                f'count(*) filter (where contains("{column}", ${i + 1})) as "{name}|{column}"'
                for column in names
                for i, name in enumerate(needles)
            ]
            counts = connection.execute(
                f'select {", ".join(checks)} from "{schema}"."{table}"', list(needles.values())
            ).df()
            for label, count in counts.iloc[0].items():
                if count:
                    name, column = label.split("|", 1)
                    found[name].append(f"{schema}.{table}.{column}")
    return found


@pytest.fixture(scope="module")
def world(dbt_manifest, tmp_path_factory):
    """One month of the loop on a small simulated company, contacts exported to files (CRM_CHANNEL=file)."""
    from orchestration.cli import run_cycles
    from orchestration.lib.settings import load_settings
    from simulator import SimulatedWorld

    home = tmp_path_factory.mktemp("forget") / "crm"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "CRM_HOME": str(home),
            "CRM_SIM_CUSTOMERS": str(CUSTOMERS),
            "CRM_SIM_SEED": "7",
            "CRM_CHANNEL": "file",
            "DAGSTER_HOME": str(home / "dagster"),
            "CRM_WAREHOUSE": str(home / "warehouse.duckdb"),
        }.items():
            patch.setenv(name, value)
        patch.delenv("CRM_SOURCE", raising=False)
        settings = load_settings()
        run_cycles(settings, 1, quiet=True)
    exports = sorted(settings.exports_dir.glob("*.csv"))
    assert exports, "the file channel exported the contact lists"
    contacted = pd.concat([pd.read_csv(path, dtype=str) for path in exports], ignore_index=True)
    customer_id = sorted(contacted["customer_id"])[0]
    person = SimulatedWorld(home, seed=7, n_customers=CUSTOMERS).customers(MONTH).set_index("customer_id")
    return {"settings": settings, "customer_id": customer_id, "person": person.loc[customer_id], "exports": exports}


def _personal_values(world) -> dict[str, str]:
    person = world["person"]
    values = {"customer_id": world["customer_id"], "full_name": person["full_name"], "email": person["email"]}
    if isinstance(person["phone"], str) and person["phone"]:
        values["phone"] = person["phone"]
    return values


def test_forget_erases_the_customer_and_keeps_the_aggregates(world):
    from orchestration.cli import main

    settings = world["settings"]
    warehouse = settings.warehouse_path
    personal = _personal_values(world)
    before_mentions = _mentions(warehouse, personal)
    assert before_mentions["customer_id"] and before_mentions["email"], "the customer was in the warehouse"
    assert any(personal["email"] in path.read_text() for path in world["exports"]), "and in an export"
    aggregates = {name: _read(warehouse, sql) for name, sql in AGGREGATES.items()}

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRM_HOME", str(settings.home))
        patch.setenv("CRM_SIM_CUSTOMERS", str(CUSTOMERS))
        assert main(["forget", world["customer_id"], "--by", "privacy officer"]) == 0

    # nothing personal remains, anywhere in the warehouse or the exports
    assert _mentions(warehouse, personal) == {name: [] for name in personal}
    for name, value in personal.items():
        for path in world["exports"]:
            assert value not in path.read_text(), (name, path)
    # the anonymised aggregates keep their values
    for name, sql in AGGREGATES.items():
        pd.testing.assert_frame_equal(_read(warehouse, sql), aggregates[name], obj=name)
    # the erasure is recorded, without the customer's data
    erasures = _read(warehouse, "select * from audit.erasures")
    assert len(erasures) == 1 and erasures["requested_by"][0] == "privacy officer"
    token = erasures["token"][0]
    assert token.startswith("forgotten-") and _mentions(warehouse, {"token": token})["token"]
    record = " ".join(map(str, erasures.iloc[0].tolist()))
    assert all(value not in record for value in personal.values())


def test_a_forgotten_customer_delivered_again_arrives_anonymised(world):
    from dagster import materialize

    from orchestration.resources import DuckDBWarehouseResource, SourceResource
    from orchestration.stages.collect import gates
    from orchestration.stages.collect.assets import collect_raw_tables

    settings = world["settings"]
    warehouse = settings.warehouse_path
    token = _read(warehouse, "select token from audit.erasures")["token"][0]
    result = materialize(
        [collect_raw_tables, gates.suite_raw_customers, gates.suite_raw_orders],
        partition_key=MONTH.isoformat(),
        resources={
            "source": SourceResource(kind="simulator", home=str(settings.home), sim_seed=7, sim_customers=CUSTOMERS),
            "warehouse": DuckDBWarehouseResource(path=str(warehouse)),
        },
    )
    assert result.success
    personal = _personal_values(world)
    assert _mentions(warehouse, personal) == {name: [] for name in personal}
    again = _read(warehouse, "select * from raw.customers where customer_id = ?", [token])
    assert len(again) == 1 and again[["full_name", "email", "phone"]].isna().all().all()
    assert not again["email_consent"].iloc[0]
