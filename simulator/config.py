"""The simulator's frozen parameters, read from `world.yaml` (population, behaviour, catalogue) and
`effects.yaml` (true treatment effects of each offer)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

CONFIG_DIR = Path(__file__).resolve().parent
WORLD_CONFIG = CONFIG_DIR / "world.yaml"
EFFECTS_CONFIG = CONFIG_DIR / "effects.yaml"


@dataclass(frozen=True)
class OfferEffect:
    """Parameters of one offer's persuasion probability delta_{i,o} (see effects.yaml)."""

    offer_id: str
    max_uplift: float
    intercept: float
    responsiveness: float
    price_sensitivity: float
    frequency: float
    frequency_cap: int
    never_purchased: float
    recency_upper_bounds: tuple[float, ...]  # months since last purchase, inclusive, last is +inf
    recency_effects: tuple[float, ...]
    voucher_value: float = 0.0  # EUR credited on the order that redeems it
    product_line: int | None = None  # line index of a line-specific offer (None: any line)
    line_fit_cap: float = 1.0
    reactivation: Reactivation | None = None


@dataclass(frozen=True)
class Reactivation:
    """Parameters of an offer's reactivation probability of a dropped-out customer (see effects.yaml)."""

    max_reactivation: float
    intercept: float
    responsiveness: float
    past_orders: float
    months_since_last_purchase: float


@dataclass(frozen=True)
class Traces:
    """How the hidden traits show in what the company records (see effects.yaml, `traces` and `redemption`)."""

    promotion_code: str
    promotion_discount_rate: float
    promotion_intercept: float
    promotion_price_sensitivity: float
    email_order_intercept: float
    email_order_responsiveness: float
    open_intercept: float
    open_responsiveness: float
    open_sleeping_dog: float
    click_intercept: float
    click_responsiveness: float
    unsubscribe: float
    unsubscribe_sleeping_dog: float
    redemption_intercept: float
    redemption_price_sensitivity: float


@dataclass(frozen=True)
class SimulatorConfig:
    """Every frozen number of the simulated world."""

    first_month: date
    burn_in_months: int
    legacy_share: float
    legacy_months: int
    burn_in_monthly_growth: float
    new_customers_per_month: float
    first_order_at_signup: float
    purchase_rate_shape: float
    purchase_rate_mean: float
    purchase_rate_maximum: float
    lifetime_shape: float
    mean_dropout_rate: float
    spend_shape: float
    mean_extra_items: float
    price_sensitivity_elasticity: float
    affinity_concentration: float
    consent_opt_in: float
    consent_withdrawal_hazard: float
    seasonality: tuple[float, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    products: pd.DataFrame  # product_id, product_line, product_name, unit_price, unit_cost, line_index, weight
    line_names: tuple[str, ...]
    line_popularity: tuple[float, ...]
    sleeping_dog_share: float
    suppression_beta: tuple[float, float]
    offers: dict[str, OfferEffect]
    traces: Traces
    effects_version: int
    fingerprint: str

    @property
    def n_lines(self) -> int:
        return len(self.line_names)

    def line_keys(self) -> list[str]:
        """Column-safe names of the product lines (used for affinity trait columns and cross-sell offers)."""
        return _line_keys(self.line_names)

    def within_line_cumulative_weights(self) -> np.ndarray:
        """(n_lines, max products per line) cumulative product weights within each line, padded with 1."""
        per_line = self.products.groupby("line_index", sort=True)["weight"].apply(list)
        width = max(len(weights) for weights in per_line)
        table = np.ones((self.n_lines, width))
        for line_index, weights in per_line.items():
            shares = np.asarray(weights) / np.sum(weights)
            table[line_index, : len(shares)] = np.cumsum(shares)
        table[:, -1] = 1.0
        return table

    def first_product_of_line(self) -> np.ndarray:
        """Row index in `products` of each line's first product (products are stored line by line)."""
        return self.products.groupby("line_index", sort=True).cumcount().eq(0).to_numpy().nonzero()[0]

    def expected_line_value(self, column: str) -> np.ndarray:
        """Expected `column` (unit_price or unit_margin) of one item bought in each line."""
        products = self.products.assign(unit_margin=self.products["unit_price"] - self.products["unit_cost"])
        share = products["weight"] / products.groupby("line_index")["weight"].transform("sum")
        return (share * products[column]).groupby(products["line_index"]).sum().to_numpy()


def _offer_effect(offer_id: str, spec: dict, product_line: int | None = None) -> OfferEffect:
    bounds = [np.inf if step["up_to_months"] is None else float(step["up_to_months"]) for step in spec["recency"]]
    if bounds[-1] != np.inf or bounds != sorted(bounds):
        raise ValueError(f"effects.yaml: {offer_id}.recency must be increasing and end with up_to_months: null")
    return OfferEffect(
        offer_id=offer_id,
        max_uplift=float(spec["max_uplift"]),
        intercept=float(spec["intercept"]),
        responsiveness=float(spec["responsiveness"]),
        price_sensitivity=float(spec["price_sensitivity"]),
        frequency=float(spec["frequency"]),
        frequency_cap=int(spec["frequency_cap"]),
        never_purchased=float(spec["never_purchased"]),
        recency_upper_bounds=tuple(bounds),
        recency_effects=tuple(float(step["effect"]) for step in spec["recency"]),
        voucher_value=float(spec["voucher_value"]),
        product_line=product_line,
        line_fit_cap=float(spec.get("line_fit_cap", 1.0)),
        reactivation=Reactivation(**{k: float(v) for k, v in spec["reactivation"].items()})
        if "reactivation" in spec
        else None,
    )


def _offer_effects(effects: dict, line_keys: list[str]) -> dict[str, OfferEffect]:
    """The generic offers of effects.yaml and one cross-sell offer per product line."""
    offers = {offer_id: _offer_effect(offer_id, spec) for offer_id, spec in effects["offers"].items()}
    for line_index, key in enumerate(line_keys):
        offer_id = f"cross_sell_{key}"
        offers[offer_id] = _offer_effect(offer_id, effects["cross_sell"], product_line=line_index)
    return offers


def _traces(effects: dict) -> Traces:
    traces, engagement = effects["traces"], effects["traces"]["email_engagement"]
    return Traces(
        promotion_code=str(traces["promotion"]["code"]),
        promotion_discount_rate=float(traces["promotion"]["discount_rate"]),
        promotion_intercept=float(traces["promotion"]["intercept"]),
        promotion_price_sensitivity=float(traces["promotion"]["price_sensitivity"]),
        email_order_intercept=float(traces["email_orders"]["intercept"]),
        email_order_responsiveness=float(traces["email_orders"]["responsiveness"]),
        open_intercept=float(engagement["open_intercept"]),
        open_responsiveness=float(engagement["open_responsiveness"]),
        open_sleeping_dog=float(engagement["open_sleeping_dog"]),
        click_intercept=float(engagement["click_intercept"]),
        click_responsiveness=float(engagement["click_responsiveness"]),
        unsubscribe=float(engagement["unsubscribe"]),
        unsubscribe_sleeping_dog=float(engagement["unsubscribe_sleeping_dog"]),
        redemption_intercept=float(effects["redemption"]["intercept"]),
        redemption_price_sensitivity=float(effects["redemption"]["price_sensitivity"]),
    )


def _line_keys(names) -> list[str]:
    return ["".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_").replace("__", "_") for name in names]


def _catalogue(lines: list[dict]) -> pd.DataFrame:
    rows = []
    for line_index, line in enumerate(lines):
        for product in line["products"]:
            price = float(product["price"])
            rows.append(
                {
                    "product_id": f"P{len(rows) + 1:03d}",
                    "product_line": line["line"],
                    "product_name": product["name"],
                    "unit_price": price,
                    "unit_cost": round(price * (1.0 - float(line["margin_rate"])), 2),
                    "line_index": line_index,
                    "weight": float(product["weight"]),
                }
            )
    products = pd.DataFrame(rows)
    return products.astype({"product_id": "str", "product_line": "str", "product_name": "str"})


def _fingerprint(*documents: dict) -> str:
    """A short hash of the parsed parameters (comments and layout do not change it)."""
    canonical = json.dumps(documents, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@cache
def load_config() -> SimulatorConfig:
    """Parse world.yaml and effects.yaml (once per process)."""
    world = yaml.safe_load(WORLD_CONFIG.read_text())
    effects = yaml.safe_load(EFFECTS_CONFIG.read_text())
    lines = world["product_lines"]
    popularity = np.array([float(line["popularity"]) for line in lines])
    seasonality = np.array(world["seasonality"], dtype=float)
    if len(seasonality) != 12:
        raise ValueError("world.yaml: seasonality needs 12 calendar-month factors")
    first_month = world["calendar"]["first_month"]
    if not isinstance(first_month, date) or first_month.day != 1:
        raise ValueError("world.yaml: calendar.first_month must be the first day of a month")
    return SimulatorConfig(
        first_month=first_month,
        burn_in_months=int(world["calendar"]["burn_in_months"]),
        legacy_share=float(world["acquisition"]["legacy_share"]),
        legacy_months=int(world["acquisition"]["legacy_months"]),
        burn_in_monthly_growth=float(world["acquisition"]["burn_in_monthly_growth"]),
        new_customers_per_month=float(world["acquisition"]["new_customers_per_month"]),
        first_order_at_signup=float(world["acquisition"]["first_order_at_signup"]),
        purchase_rate_shape=float(world["purchase_rate"]["shape"]),
        purchase_rate_mean=float(world["purchase_rate"]["mean"]),
        purchase_rate_maximum=float(world["purchase_rate"]["maximum"]),
        lifetime_shape=float(world["lifetime"]["shape"]),
        mean_dropout_rate=float(world["lifetime"]["mean_dropout_rate"]),
        spend_shape=float(world["spend"]["shape"]),
        mean_extra_items=float(world["spend"]["mean_extra_items"]),
        price_sensitivity_elasticity=float(world["spend"]["price_sensitivity_elasticity"]),
        affinity_concentration=float(world["affinity"]["concentration"]),
        consent_opt_in=float(world["consent"]["opt_in_at_signup"]),
        consent_withdrawal_hazard=float(world["consent"]["monthly_withdrawal_hazard"]),
        seasonality=tuple(seasonality / seasonality.mean()),
        first_names=tuple(str(name) for name in world["synthetic_names"]["first"]),
        last_names=tuple(str(name) for name in world["synthetic_names"]["last"]),
        products=_catalogue(lines),
        line_names=tuple(line["line"] for line in lines),
        line_popularity=tuple(popularity / popularity.sum()),
        sleeping_dog_share=float(effects["sleeping_dogs"]["share"]),
        suppression_beta=tuple(float(v) for v in effects["sleeping_dogs"]["suppression_beta"]),
        offers=_offer_effects(effects, _line_keys(line["line"] for line in lines)),
        traces=_traces(effects),
        effects_version=int(effects["version"]),
        fingerprint=_fingerprint(world, effects),
    )
