"""Where contacts go: the simulated world, or one CSV file per campaign for an e-mail/SMS platform."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pandas as pd
from dagster import ConfigurableResource

# The documented schema of the file channel's export (one row per contact).
EXPORT_COLUMNS = ["idempotency_key", "campaign_id", "customer_id", "offer_id", "email", "phone", "send_date"]


class ChannelResource(ConfigurableResource):
    """Delivers a campaign's contacts; delivering the same contacts again sends nothing new."""

    kind: str = "simulated"
    exports_dir: str = "data/exports"
    home: str = "data"
    sim_seed: int = 7
    sim_customers: int = 20_000

    def _world(self):
        from simulator import SimulatedWorld

        return SimulatedWorld(Path(self.home), seed=self.sim_seed, n_customers=self.sim_customers)

    def deliver(self, delivery_month: date, campaign_id: str, contacts: pd.DataFrame) -> int:
        """Hand `contacts` (customer_id, offer_id, email, phone, idempotency_key) to the channel.

        Returns how many contacts were newly sent.
        """
        if self.kind == "simulated":
            return self._world().deliver(
                delivery_month, campaign_id, contacts[["customer_id", "offer_id"]], channel="simulated"
            )
        return self._export_file(delivery_month, campaign_id, contacts)

    def close_month(self, delivery_month: date) -> None:
        """Every campaign for `delivery_month` has been delivered (or there were none)."""
        if self.kind == "simulated":
            self._world().seal_month(delivery_month)

    def _export_file(self, delivery_month: date, campaign_id: str, contacts: pd.DataFrame) -> int:
        folder = Path(self.exports_dir)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{campaign_id}.csv"
        rows = contacts.assign(campaign_id=campaign_id, send_date=delivery_month.isoformat())[EXPORT_COLUMNS]
        if target.exists():
            already = pd.read_csv(target, dtype=str, keep_default_na=False)
            rows = rows[~rows["idempotency_key"].isin(already["idempotency_key"])]
            if rows.empty:
                return 0
            combined = pd.concat([already, rows.astype(str)], ignore_index=True)
        else:
            combined = rows
        partial = target.with_suffix(".csv.partial")
        combined.to_csv(partial, index=False)
        os.replace(partial, target)
        return len(rows)
