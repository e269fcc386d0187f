"""Where contacts go: the simulated world, or one CSV file per campaign for an e-mail/SMS platform.

The `file` channel writes `$CRM_HOME/exports/<campaign_id>.csv`, the list an e-mail or SMS platform imports:
UTF-8, comma-separated, a header line, one row per contact, columns in this order:

| column          | type              | meaning                                                              |
|-----------------|-------------------|----------------------------------------------------------------------|
| idempotency_key | text (24 hex)     | unique per campaign and customer; the platform must drop a key it has |
| campaign_id     | text              | `<delivery month>-<objective>`, e.g. `2025-03-retention`              |
| customer_id     | text              | the customer's id in the source system                               |
| offer_id        | text              | the offer to send (see the `offers` seed)                            |
| email           | text              | e-mail address, re-read from the source at send time                 |
| phone           | text              | phone number, re-read from the source at send time                    |
| send_date       | date (YYYY-MM-DD) | first day of the delivery month                                       |

Only customers whose consent still allows contact at send time are in the file. A file is replaced atomically
(written to `<campaign_id>.csv.partial`, then renamed), and a key already in the file is never written again,
so a platform re-importing the file after a resumed delivery sees every contact exactly once.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pandas as pd
from dagster import ConfigurableResource

from simulator import SimulatedWorld

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
