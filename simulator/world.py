"""The simulated world: a company whose customers buy month by month and react to campaign contacts.

Observable state (what a real company's systems hold) lives under `home/simulator/`:
  manifest.json                              seed, n_customers, parameter fingerprint
  deliveries/<YYYY-MM>/<campaign_id>.parquet contacts handed to the channel for delivery in that month
  seals/<YYYY-MM>.json                       the month's campaigns are all delivered: it may happen
The hidden traits are written apart, to `home/simulator/ground_truth/`, read only by `ground_truth.py`,
`evaluation.py` and tests.

Every random draw for month m comes from `np.random.default_rng([seed, m, stream, cohort])` and is made
for every customer of the cohort whoever is contacted (common random numbers), so contacting a customer
changes that customer's orders only, and `orders(M)` is a pure function of (seed, n_customers, M,
contacts delivered for M).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.behaviour import (
    PurchaseHistory,
    email_order_probability,
    engagement_probabilities,
    persuasion_probability,
    promotion_probability,
    purchase_history,
    redemption_probability,
    suppression_probability,
    usual_order_intensity,
)
from simulator.config import SimulatorConfig, load_config
from simulator.months import as_month, days_in_month, label, month_at, month_index
from simulator.population import (
    STREAM_CAMPAIGN,
    STREAM_ENGAGEMENT,
    STREAM_ORDER_DETAILS,
    STREAM_ORDER_TRACES,
    STREAM_USUAL_ORDERS,
    affinity_columns,
    cohort_size,
    first_customer_number,
    generate_cohort,
    synthetic_contact_details,
)

MANIFEST_FORMAT = 1
CAMPAIGN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
CUSTOMER_ID_PATTERN = r"^C\d{7}$"

CUSTOMER_COLUMNS = ["customer_id", "full_name", "email", "phone", "signup_date", "email_consent"]
ORDER_COLUMNS = [
    "order_id",
    "customer_id",
    "order_date",
    "product_id",
    "quantity",
    "amount",
    "discount_code",
    "discount_amount",
    "order_source",
]
CONTACT_LOG_COLUMNS = ["campaign_id", "customer_id", "offer_id", "channel", "contacted_at"]
ENGAGEMENT_COLUMNS = ["opened", "clicked", "unsubscribed"]


class WorldNotReady(RuntimeError):
    """The world cannot show or accept a month yet: the message names the loop month to run first."""


class MonthAlreadySealed(RuntimeError):
    """New contacts for a month whose campaigns were already executed (the month may have been observed)."""


def stored_world(home: Path | str) -> dict | None:
    """The seed and size of the simulated world already created under `home` (None: no world there yet), so that a
    launcher can refuse other settings before anything runs."""
    path = Path(home) / "simulator" / "manifest.json"
    if not path.exists():
        return None
    found = json.loads(path.read_text())
    return {"seed": found.get("seed"), "n_customers": found.get("n_customers")}


class SimulatedWorld:
    """A seeded simulated multi-product company with hidden ground truth (see the package docstring)."""

    def __init__(self, home: Path | str, seed: int = 7, n_customers: int = 20_000) -> None:
        if int(n_customers) < 1:
            raise ValueError(f"n_customers must be positive, got {n_customers}")
        self.home = Path(home)
        self.root = self.home / "simulator"
        self.seed = int(seed)
        self.n_customers = int(n_customers)
        self._config: SimulatorConfig = load_config()
        self._origin = month_at(-self._config.burn_in_months, self._config.first_month)
        self._cohorts: list[pd.DataFrame] = []
        self._population_cache: pd.DataFrame | None = None
        self._usual_orders: dict[int, np.ndarray] = {}
        self._open_or_create()

    # ------------------------------------------------------------------ public: calendar and catalogue
    @property
    def first_month(self) -> date:
        """The first loop month (first Dagster partition); its orders carry the whole burn-in history."""
        return self._config.first_month

    @property
    def burn_in_months(self) -> int:
        """Months of history generated before `first_month`."""
        return self._config.burn_in_months

    @property
    def parameters_fingerprint(self) -> str:
        """The fingerprint of the frozen parameters (world.yaml and effects.yaml) this world was built with."""
        return self._config.fingerprint

    @property
    def promotion_code(self) -> str:
        """The shop's standing promotional code (orders' discount_code when no campaign voucher is redeemed)."""
        return self._config.traces.promotion_code

    @property
    def version(self) -> str:
        """The frozen world's version, named in every report: effects.yaml's version and the fingerprint of
        both parameter files, e.g. ``v2-1a2b3c4d``."""
        return f"v{self._config.effects_version}-{self._config.fingerprint[:8]}"

    @property
    def last_sealed_month(self) -> date:
        """The latest month whose campaigns are executed: the latest month that can be observed."""
        return month_at(self._last_sealed_index(), self._origin)

    def products(self) -> pd.DataFrame:
        """The product catalogue: product_id, product_line, product_name, unit_price, unit_cost."""
        return self._config.products[["product_id", "product_line", "product_name", "unit_price", "unit_cost"]].copy()

    # ------------------------------------------------------------------ public: observable tables
    def customers(self, month: date) -> pd.DataFrame:
        """Every customer signed up on or before the end of `month`, with e-mail consent as of that day."""
        m = self._observable_index(month, "customers")
        traits = self._population(m)
        details = pd.concat(
            [
                synthetic_contact_details(self.seed, self._config, cohort)
                for _, cohort in traits.groupby("cohort", sort=True)
            ],
            ignore_index=True,
        )
        consent = (
            traits["consent_at_signup"].to_numpy()
            & (traits["consent_withdrawal_month_index"].to_numpy() > m)
            & ~self._unsubscribed_by(m, len(traits))
        )
        frame = pd.DataFrame(
            {
                "customer_id": traits["customer_id"].to_numpy(),
                "full_name": details["full_name"],
                "email": details["email"],
                "phone": details["phone"],
                "signup_date": traits["signup_date"].to_numpy(),
                "email_consent": consent,
            }
        )
        return frame.astype({"customer_id": "str", "full_name": "str", "email": "str", "phone": "str"})

    def orders(self, month: date) -> pd.DataFrame:
        """Orders placed in `month`; for `first_month` also every order of the burn-in before it."""
        m = self._observable_index(month, "orders")
        first = self._first_index
        months = range(m if m > first else 0, m + 1)
        frames = [self._orders_of_month(i) for i in months]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def contact_log(self, month: date) -> pd.DataFrame:
        """The channel's delivery log for `month`: one row per contact delivered at its start, with what the
        customer did with the e-mail (opened, clicked, unsubscribed)."""
        m = self._observable_index(month, "the contact log")
        return self._engagement(m)

    # ------------------------------------------------------------------ public: the channel
    def deliver(self, month: date, campaign_id: str, contacts: pd.DataFrame, channel: str = "simulated") -> int:
        """Deliver `contacts` (customer_id, offer_id) at the start of `month` for `campaign_id`.

        Idempotent per (campaign_id, customer_id): a customer already delivered for the campaign is not
        delivered again (whatever offer the new row names). Returns the number newly delivered.
        """
        month = as_month(month)
        m = month_index(month, self._origin)
        if not isinstance(campaign_id, str) or not CAMPAIGN_ID_PATTERN.match(campaign_id):
            raise ValueError(f"campaign_id must be letters, digits, '-', '_' or '.', got {campaign_id!r}")
        rows = self._validated_contacts(contacts, month, m)
        if m <= self._first_index:
            if rows.empty:
                return 0
            raise MonthAlreadySealed(
                f"Cannot deliver campaign {campaign_id} into {label(month)}: campaigns can only be delivered "
                f"from {label(month_at(self._first_index + 1, self._origin))} on (the first loop month's "
                "execute stage delivers them); earlier months are history."
            )
        last = self._last_sealed_index()
        if m > last + 1:
            raise WorldNotReady(f"Cannot deliver campaign {campaign_id} into {label(month)}: {self._behind(last)}")
        target = self._delivery_dir(m) / f"{campaign_id}.parquet"
        already = pd.read_parquet(target) if target.exists() else None
        if already is not None:
            rows = rows[~rows["customer_id"].isin(already["customer_id"])]
        if rows.empty:
            return 0
        if self.is_sealed(month):
            raise MonthAlreadySealed(
                f"Cannot deliver {len(rows)} new contacts of campaign {campaign_id} into {label(month)}: the "
                f"month is sealed (its campaigns were executed and its orders may have been observed). "
                "Re-delivering contacts already delivered is allowed and adds nothing."
            )
        new = pd.DataFrame(
            {
                "campaign_id": campaign_id,
                "customer_id": rows["customer_id"].to_numpy(),
                "offer_id": rows["offer_id"].to_numpy(),
                "channel": str(channel),
                "contacted_at": pd.Timestamp(month),
            }
        )
        combined = new if already is None else pd.concat([already, new], ignore_index=True)
        _write_parquet(_contact_log_schema(combined), target)
        return len(new)

    def seal_month(self, month: date) -> None:
        """Record that every campaign for `month` has been delivered (or there were none): the world may
        now advance into `month`. Idempotent; months are sealed in order."""
        month = as_month(month)
        m = month_index(month, self._origin)
        if m <= self._first_index or self.is_sealed(month):
            return
        last = self._last_sealed_index()
        if m > last + 1:
            raise WorldNotReady(f"Cannot seal {label(month)}: {self._behind(last)}")
        deliveries = self._deliveries(m)
        record = {
            "month": month.isoformat(),
            "sealed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "campaigns": sorted(deliveries["campaign_id"].unique().tolist()),
            "contacts": len(deliveries),
        }
        path = self.root / "seals" / f"{label(month)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_text(json.dumps(record, indent=2), path)

    def is_sealed(self, month: date) -> bool:
        """True when `month`'s campaigns are executed (always for first_month and the burn-in)."""
        m = month_index(as_month(month), self._origin)
        return m <= self._first_index or (self.root / "seals" / f"{label(as_month(month))}.json").exists()

    # ------------------------------------------------------------------ state on disk
    @property
    def _ground_truth_dir(self) -> Path:
        return self.root / "ground_truth"

    def _manifest(self) -> dict:
        return {
            "format": MANIFEST_FORMAT,
            "seed": self.seed,
            "n_customers": self.n_customers,
            "first_month": self.first_month.isoformat(),
            "burn_in_months": self.burn_in_months,
            "parameters_fingerprint": self._config.fingerprint,
        }

    def _open_or_create(self) -> None:
        path = self.root / "manifest.json"
        expected = self._manifest()
        if path.exists():
            found = json.loads(path.read_text())
            different = [key for key in expected if found.get(key) != expected[key]]
            if different:
                stored = ", ".join(f"{key}={found.get(key)!r}" for key in different)
                asked = ", ".join(f"{key}={expected[key]!r}" for key in different)
                raise ValueError(
                    f"The simulated world in {self.root} was created with {stored}, but this run asks for "
                    f"{asked}. Use the same settings, another home directory, or delete {self.root} to "
                    "start a new world (its deliveries and seals are lost)."
                )
            return
        # a new world: traits left by an interrupted creation (traits are written before the manifest)
        # may come from other settings, so the hidden traits are written afresh
        if self._ground_truth_dir.exists():
            shutil.rmtree(self._ground_truth_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self._cohort(0)  # writes the base cohort's hidden traits
        _write_text(json.dumps(expected, indent=2), path)

    def _delivery_dir(self, m: int) -> Path:
        return self.root / "deliveries" / label(month_at(m, self._origin))

    def _deliveries(self, m: int) -> pd.DataFrame:
        folder = self._delivery_dir(m)
        files = sorted(folder.glob("*.parquet")) if folder.exists() else []
        if not files:
            empty = pd.DataFrame({column: pd.Series(dtype="str") for column in CONTACT_LOG_COLUMNS})
            return _contact_log_schema(empty)
        log = pd.concat([pd.read_parquet(file) for file in files], ignore_index=True)
        return _contact_log_schema(log.sort_values(["campaign_id", "customer_id"], ignore_index=True))

    def _last_sealed_index(self) -> int:
        folder = self.root / "seals"
        sealed = {month_index(date.fromisoformat(f"{path.stem}-01"), self._origin) for path in folder.glob("*.json")}
        last = self._first_index
        while last + 1 in sealed:
            last += 1
        return last

    # ------------------------------------------------------------------ readiness
    @property
    def _first_index(self) -> int:
        return self._config.burn_in_months

    def _observable_index(self, month: date, what: str) -> int:
        month = as_month(month)
        m = month_index(month, self._origin)
        first = label(self.first_month)
        if m < self._first_index:
            raise WorldNotReady(
                f"The simulated world has no {what} for {label(month)}: it starts at {first}, and the "
                f"{self.burn_in_months} months of history before {first} come with {first}'s orders."
            )
        last = self._last_sealed_index()
        if m <= last:
            return m
        if m == last + 1:
            raise WorldNotReady(
                f"The simulated world cannot advance into {label(month)}: its campaigns have not been "
                f"executed. Run the loop for {label(month_at(last, self._origin))} first (its execute stage "
                f"delivers the {label(month)} campaigns)."
            )
        raise WorldNotReady(f"The simulated world cannot advance into {label(month)}: {self._behind(last)}")

    def _behind(self, last: int) -> str:
        """Why a month more than one beyond the last sealed month `last` is refused, and what to run."""
        last_label, next_label = label(month_at(last, self._origin)), label(month_at(last + 1, self._origin))
        return (
            f"it has only advanced to {last_label} and moves one month at a time. Run the loop for "
            f"{last_label} first (its execute stage delivers the {next_label} campaigns), then each "
            "following month in order."
        )

    # ------------------------------------------------------------------ customers and their traits
    def _cohort(self, cohort: int) -> pd.DataFrame:
        """Hidden traits of one cohort from the ground-truth store (generated and stored on first use)."""
        while len(self._cohorts) <= cohort:
            index = len(self._cohorts)
            path = self._ground_truth_dir / f"traits_cohort_{index:04d}.parquet"
            if path.exists():
                traits = pd.read_parquet(path)
            else:
                traits = generate_cohort(self._config, self.seed, self.n_customers, index)
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_parquet(traits, path)
            self._cohorts.append(traits)
        return self._cohorts[cohort]

    def _population(self, m: int) -> pd.DataFrame:
        """Hidden traits of every customer who exists in month `m` (cohorts that signed up by then),
        in customer-number order (row position = customer number - 1)."""
        n_cohorts = max(m - self._first_index, 0) + 1
        size = self._population_size(m)
        if self._population_cache is None or len(self._population_cache) < size:
            self._population_cache = pd.concat([self._cohort(c) for c in range(n_cohorts)], ignore_index=True)
        return self._population_cache.iloc[:size]

    def _population_size(self, m: int) -> int:
        return self._cohort_bounds(m)[-1][2]

    def _cohort_bounds(self, m: int) -> list[tuple[int, int, int]]:
        """(cohort, first row, end row) of every cohort existing in month `m`."""
        bounds = []
        for cohort in range(max(m - self._first_index, 0) + 1):
            start = first_customer_number(self._config, self.n_customers, cohort) - 1
            bounds.append((cohort, start, start + cohort_size(self._config, self.n_customers, cohort)))
        return bounds

    # ------------------------------------------------------------------ behaviour
    def _engagement(self, m: int) -> pd.DataFrame:
        """Month m's deliveries with opened / clicked / unsubscribed: drawn for every customer of each cohort
        (common random numbers), so they depend on the customer and the month only."""
        log = self._deliveries(m)
        traits = self._population(m)
        position = log["customer_id"].str.slice(1).astype(np.int64).to_numpy() - 1
        p_open, p_click, p_unsubscribe = engagement_probabilities(traits, self._config.traces)
        draws = np.empty((3, len(traits)))
        for cohort, start, end in self._cohort_bounds(m):
            draws[:, start:end] = np.random.default_rng([self.seed, m, STREAM_ENGAGEMENT, cohort]).random(
                (3, end - start)
            )
        opened = draws[0, position] < p_open[position]
        log["opened"] = opened
        log["clicked"] = opened & (draws[1, position] < p_click[position])
        log["unsubscribed"] = draws[2, position] < p_unsubscribe[position]
        return log

    def _unsubscribed_by(self, m: int, size: int) -> np.ndarray:
        """True for the customers who unsubscribed from a contact delivered in a loop month up to `m`."""
        out = np.zeros(size, dtype=bool)
        for month in range(self._first_index + 1, m + 1):
            if not self._delivery_dir(month).exists():
                continue
            log = self._engagement(month)
            gone = log.loc[log["unsubscribed"], "customer_id"].str.slice(1).astype(np.int64).to_numpy() - 1
            out[gone[gone < size]] = True
        return out

    def _usual_order_counts(self, m: int) -> np.ndarray:
        """Usual (uncontacted) orders of every customer existing in month `m`: W_i + Poisson(Lambda_i)."""
        if m not in self._usual_orders:
            traits = self._population(m)
            counts = np.zeros(len(traits), dtype=np.int64)
            for cohort, start, end in self._cohort_bounds(m):
                intensity, signup_order = usual_order_intensity(traits.iloc[start:end], m, self._config)
                rng = np.random.default_rng([self.seed, m, STREAM_USUAL_ORDERS, cohort])
                counts[start:end] = signup_order + rng.poisson(intensity)
            self._usual_orders[m] = counts
        return self._usual_orders[m]

    def _purchase_history(self, m: int) -> PurchaseHistory:
        """Recency/frequency at the start of month `m` from the usual orders of every earlier month."""
        return purchase_history([self._usual_order_counts(i) for i in range(m)], self._population(m), m)

    def _orders_of_month(self, m: int) -> pd.DataFrame:
        traits = self._population(m)
        config = self._config
        contacts = self._deliveries(m) if m > self._first_index else None
        counts = self._usual_order_counts(m)
        affinity = traits[affinity_columns(config)].to_numpy()
        extra_items_rate = traits["extra_items_rate"].to_numpy()

        keep = np.ones(len(traits), dtype=bool)
        extra_order = np.zeros(len(traits), dtype=bool)
        redeems = np.zeros(len(traits), dtype=bool)
        offer_of = np.full(len(traits), -1, dtype=np.int64)  # strongest offer of a contacted customer
        campaign_draws: dict[int, dict[str, np.ndarray]] = {}
        if contacts is not None and len(contacts):
            contacted, persuasion, suppression, offer_of = self._contact_effects(m, traits, contacts)
            redemption = redemption_probability(traits, config.traces)
            for cohort, start, end in self._cohort_bounds(m):
                if not contacted[start:end].any():
                    continue
                draws = _campaign_draws(self.seed, m, cohort, extra_items_rate[start:end])
                campaign_draws[cohort] = draws
                keep[start:end] = ~(contacted[start:end] & (draws["suppress"] < suppression[start:end]))
                extra_order[start:end] = contacted[start:end] & (draws["persuade"] < persuasion[start:end])
                redeems[start:end] = contacted[start:end] & (
                    extra_order[start:end] | (draws["redeem"] < redemption[start:end])
                )
        offer_ids = list(config.offers)
        offer_lines = np.array([-1 if (e.product_line is None) else e.product_line for e in config.offers.values()])
        voucher_values = np.array([e.voucher_value for e in config.offers.values()])

        pieces = []
        month = month_at(m, self._origin)
        length = days_in_month(month)
        signup_month = traits["signup_month_index"].to_numpy()
        signup_day = traits["signup_day"].to_numpy()
        p_promotion = promotion_probability(traits, config.traces)
        p_email = email_order_probability(traits, config.traces)
        for cohort, start, end in self._cohort_bounds(m):
            cohort_counts = counts[start:end]
            owner = np.repeat(np.arange(start, end), cohort_counts)
            sequence = np.arange(len(owner)) - np.repeat(np.cumsum(cohort_counts) - cohort_counts, cohort_counts)
            rng = np.random.default_rng([self.seed, m, STREAM_ORDER_DETAILS, cohort])
            u_day, u_line, u_product = rng.random((3, len(owner)))
            items = 1 + rng.poisson(extra_items_rate[owner])
            u_promotion, u_email = np.random.default_rng([self.seed, m, STREAM_ORDER_TRACES, cohort]).random(
                (2, len(owner))
            )
            first_day = np.where(signup_month[owner] == m, signup_day[owner], 1)
            day = first_day + np.floor(u_day * (length - first_day + 1)).astype(np.int64)
            signup_order = (signup_month[owner] == m) & traits["first_order_at_signup"].to_numpy()[owner]
            day = np.where(signup_order & (sequence == 0), signup_day[owner], day)
            kept = keep[owner]
            pieces.append(
                (
                    owner[kept],
                    sequence[kept] + 1,
                    day[kept],
                    u_line[kept],
                    u_product[kept],
                    items[kept],
                    u_promotion[kept] < p_promotion[owner[kept]],
                    u_email[kept] < p_email[owner[kept]],
                    np.zeros(int(kept.sum()), dtype=bool),
                )
            )
            if cohort in campaign_draws:
                draws = campaign_draws[cohort]
                local = np.flatnonzero(extra_order[start:end])
                # campaign-induced orders come soon after the contact: day ~ 1 + days * U^2; they follow the
                # e-mail's link and redeem its voucher
                extra_day = 1 + np.floor(draws["day"][local] ** 2 * length).astype(np.int64)
                pieces.append(
                    (
                        local + start,
                        cohort_counts[local] + 1,
                        extra_day,
                        draws["line"][local],
                        draws["product"][local],
                        draws["items"][local],
                        np.zeros(len(local), dtype=bool),
                        np.ones(len(local), dtype=bool),
                        np.ones(len(local), dtype=bool),
                    )
                )
        owner, sequence, day, u_line, u_product, items, promoted, from_email, is_extra = (
            np.concatenate(parts) for parts in zip(*pieces, strict=True)
        )
        order_affinity = affinity[owner]
        line_of_offer = np.where(offer_of[owner] >= 0, offer_lines[np.maximum(offer_of[owner], 0)], -1)
        line_offer_extra = is_extra & (line_of_offer >= 0)
        if line_offer_extra.any():  # a cross-sell offer's extra order is of the offer's line
            order_affinity[line_offer_extra] = np.eye(config.n_lines)[line_of_offer[line_offer_extra]]
        product = _choose_products(order_affinity, u_line, u_product, config)
        order = np.lexsort((sequence, owner, day))
        owner, sequence, day, product, items, promoted, from_email, is_extra = (
            owner[order],
            sequence[order],
            day[order],
            product[order],
            items[order],
            promoted[order],
            from_email[order],
            is_extra[order],
        )
        # the voucher goes on the extra order it caused, else on the redeemer's first order of the month
        voucher = np.zeros(len(owner), dtype=bool)
        redeemer = redeems[owner]
        voucher[redeemer & is_extra] = True
        first_of_owner = np.unique(owner, return_index=True)[1]
        first = np.zeros(len(owner), dtype=bool)
        first[first_of_owner] = True
        voucher |= first & redeemer & ~extra_order[owner]

        unit_price = config.products["unit_price"].to_numpy()
        amount = np.round(items * unit_price[product], 2)
        number = owner + 1
        order_number = (month.year * 100 + month.month) * 1_000_000_000 + number * 100 + sequence
        code = np.where(promoted, config.traces.promotion_code, None).astype(object)
        discount = np.where(promoted, np.round(amount * config.traces.promotion_discount_rate, 2), 0.0)
        if voucher.any():
            offer_index = offer_of[owner[voucher]]
            code[voucher] = np.asarray(offer_ids, dtype=object)[offer_index]
            discount[voucher] = voucher_values[offer_index]
        return pd.DataFrame(
            {
                "order_id": "O" + pd.Series(order_number, dtype=np.int64).astype("str"),
                "customer_id": pd.Series(traits["customer_id"].array.take(owner), dtype="str"),
                "order_date": (np.datetime64(month, "D") + (day - 1).astype("timedelta64[D]")).astype("datetime64[us]"),
                "product_id": pd.Series(config.products["product_id"].array.take(product), dtype="str"),
                "quantity": items.astype(np.int64),
                "amount": amount,
                "discount_code": pd.Series(code, dtype="str"),
                "discount_amount": discount,
                "order_source": pd.Series(np.where(from_email, "email", "web"), dtype="str"),
            }
        )

    def _contact_effects(
        self, m: int, traits: pd.DataFrame, contacts: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(contacted, delta, h, offer) per customer of month m. A customer contacted by several campaigns is
        persuaded by the strongest of its offers (one extra order at most, one voucher: that offer's, whose
        position in the world's offers is `offer`, -1 if not contacted) and suppressed at most once."""
        position = contacts["customer_id"].str.slice(1).astype(np.int64).to_numpy() - 1
        contacted = np.zeros(len(traits), dtype=bool)
        contacted[position] = True
        history = self._purchase_history(m)
        persuasion = np.full(len(traits), -1.0)
        strongest = np.full(len(traits), -1, dtype=np.int64)
        offer_of_contact = contacts["offer_id"].to_numpy()
        for index, (offer_id, effect) in enumerate(self._config.offers.items()):
            receivers = position[offer_of_contact == offer_id]
            if not len(receivers):
                continue
            delta = persuasion_probability(traits, history, m, effect, self._config)
            stronger = receivers[delta[receivers] > persuasion[receivers]]
            persuasion[stronger] = delta[stronger]
            strongest[stronger] = index
        return contacted, np.maximum(persuasion, 0.0), suppression_probability(traits, history), strongest

    def _validated_contacts(self, contacts: pd.DataFrame, month: date, m: int) -> pd.DataFrame:
        missing = {"customer_id", "offer_id"} - set(contacts.columns)
        if missing:
            raise ValueError(f"contacts need columns customer_id and offer_id; missing {sorted(missing)}")
        rows = contacts[["customer_id", "offer_id"]].astype("str")
        if contacts[["customer_id", "offer_id"]].isna().any().any():
            raise ValueError("contacts must not have missing customer_id or offer_id")
        unknown_offers = sorted(set(rows["offer_id"]) - set(self._config.offers))
        if unknown_offers:
            raise ValueError(f"unknown offer_id(s) {unknown_offers}; the world knows {sorted(self._config.offers)}")
        well_formed = rows["customer_id"].str.fullmatch(CUSTOMER_ID_PATTERN)
        number = rows["customer_id"].str.slice(1).where(well_formed, "0").astype(np.int64)
        known = well_formed & (number >= 1) & (number <= self._population_size(m - 1))
        if not known.all():
            examples = rows.loc[~known, "customer_id"].head(5).tolist()
            raise ValueError(
                f"{int((~known).sum())} contact(s) name customers who had not signed up before "
                f"{label(month)} (e.g. {examples}): only existing customers can be contacted"
            )
        return rows.drop_duplicates("customer_id", keep="first").reset_index(drop=True)


def _campaign_draws(seed: int, m: int, cohort: int, extra_items_rate: np.ndarray) -> dict[str, np.ndarray]:
    """Month m's campaign random numbers for every customer of a cohort (contacted or not)."""
    rng = np.random.default_rng([seed, m, STREAM_CAMPAIGN, cohort])
    size = len(extra_items_rate)
    suppress, persuade, day, line, product, redeem = rng.random((6, size))
    items = 1 + rng.poisson(extra_items_rate)
    return {
        "redeem": redeem,
        "suppress": suppress,
        "persuade": persuade,
        "day": day,
        "line": line,
        "product": product,
        "items": items,
    }


def _choose_products(
    affinity: np.ndarray, u_line: np.ndarray, u_product: np.ndarray, config: SimulatorConfig
) -> np.ndarray:
    """Product row of each order: line ~ Categorical(affinity), product ~ the line's fixed weights."""
    cumulative = np.cumsum(affinity, axis=1)
    line = (cumulative < (u_line * cumulative[:, -1])[:, None]).sum(axis=1)
    line = np.minimum(line, config.n_lines - 1)
    within = (config.within_line_cumulative_weights()[line] < u_product[:, None]).sum(axis=1)
    return config.first_product_of_line()[line] + within


def _contact_log_schema(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[CONTACT_LOG_COLUMNS].astype(
        {"campaign_id": "str", "customer_id": "str", "offer_id": "str", "channel": "str"}
    )
    out["contacted_at"] = pd.to_datetime(out["contacted_at"]).astype("datetime64[us]")
    return out


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    frame.to_parquet(partial, index=False)
    os.replace(partial, path)


def _write_text(text: str, path: Path) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    os.replace(partial, path)
