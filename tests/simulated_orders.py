"""Order histories of small simulated worlds, shaped like `marts.fct_orders` (shared by the model tests)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from simulator import SimulatedWorld


def simulated_orders(
    home: Path, n_customers: int, seed: int, through: date = date(2025, 6, 1)
) -> tuple[SimulatedWorld, pd.DataFrame]:
    """The world and its order lines from the burn-in through ``through`` (no campaigns delivered), with the
    columns the analyse stage reads: order_id, customer_id, order_date, product_line, revenue, margin."""
    world = SimulatedWorld(home, seed=seed, n_customers=n_customers)
    months = pd.date_range(world.first_month, through, freq="MS")
    frames = []
    for month in months:
        if month.date() > world.first_month:
            world.seal_month(month.date())
        frames.append(world.orders(month.date()))
    orders = pd.concat(frames, ignore_index=True)
    products = world.products().set_index("product_id")
    return world, pd.DataFrame(
        {
            "order_id": orders["order_id"],
            "customer_id": orders["customer_id"],
            "order_date": orders["order_date"],
            "product_line": orders["product_id"].map(products["product_line"]).astype("str"),
            "revenue": orders["amount"],
            "margin": orders["amount"] - orders["quantity"] * orders["product_id"].map(products["unit_cost"]),
        }
    )
