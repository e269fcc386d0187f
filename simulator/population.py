"""Customers of the simulated company: hidden traits per acquisition cohort, and their synthetic PII.

Cohort 0 is the base: `n_customers` customers who signed up by the end of the first loop month (a legacy
share before the burn-in, the rest over the burn-in and the first loop month).
Cohort k >= 1 signed up in loop month k (first_month + k months): round(new_customers_per_month *
n_customers) customers. Everything is drawn from `np.random.default_rng([seed, month_index, stream,
cohort])`, so a cohort is the same whatever else the world does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.config import SimulatorConfig
from simulator.months import days_in_months, month_at

# Random-number streams (third element of every seed sequence).
STREAM_TRAITS = 1
STREAM_PII = 2
STREAM_USUAL_ORDERS = 3
STREAM_ORDER_DETAILS = 4
STREAM_CAMPAIGN = 5
STREAM_ORDER_TRACES = 6
STREAM_ENGAGEMENT = 7

MAX_CUSTOMER_NUMBER = 9_999_999  # ids are "C" + 7 digits


def cohort_month_index(config: SimulatorConfig, cohort: int) -> int:
    """Month index (0 = first burn-in month) in which cohort `cohort` signed up (the base: first_month)."""
    return config.burn_in_months + cohort


def cohort_size(config: SimulatorConfig, n_customers: int, cohort: int) -> int:
    if cohort == 0:
        return n_customers
    return max(1, round(config.new_customers_per_month * n_customers))


def first_customer_number(config: SimulatorConfig, n_customers: int, cohort: int) -> int:
    if cohort == 0:
        return 1
    return n_customers + (cohort - 1) * cohort_size(config, n_customers, 1) + 1


def generate_cohort(config: SimulatorConfig, seed: int, n_customers: int, cohort: int) -> pd.DataFrame:
    """Hidden traits of one acquisition cohort, one row per customer, ordered by sign-up date.

    purchase_rate lambda_i ~ Gamma(r, mean/r) orders per month while alive; dropout_rate mu_i ~ Gamma(s,
    mean/s) and lifetime_months ~ Exponential(mu_i) (Pareto/NBD, Schmittlein, Morrison & Colombo 1987);
    extra_items_rate theta_i ~ Gamma (items per order = 1 + Poisson(theta_i), a gamma-gamma-like spend
    level, Fader, Hardie & Lee 2005) lowered by price sensitivity; affinities ~ Dirichlet.
    """
    origin = config.first_month
    size = cohort_size(config, n_customers, cohort)
    first_number = first_customer_number(config, n_customers, cohort)
    if first_number + size - 1 > MAX_CUSTOMER_NUMBER:
        raise ValueError(f"the simulated world supports at most {MAX_CUSTOMER_NUMBER:,} customers")
    signup_cohort_month = cohort_month_index(config, cohort)
    rng = np.random.default_rng([seed, signup_cohort_month, STREAM_TRAITS, cohort])

    if cohort == 0:
        legacy = np.full(config.legacy_months, config.legacy_share / max(config.legacy_months, 1))
        growth = (1.0 + config.burn_in_monthly_growth) ** np.arange(config.burn_in_months + 1)
        share = np.concatenate([legacy, (1.0 - config.legacy_share) * growth / growth.sum()])
        months = np.arange(-config.legacy_months, config.burn_in_months + 1)
        signup_month = rng.choice(months, size=size, p=share / share.sum())
    else:
        signup_month = np.full(size, signup_cohort_month)
    burn_in_start = month_at(-config.burn_in_months, origin)
    month_lengths = days_in_months(signup_month, burn_in_start)
    signup_day = 1 + np.floor(rng.random(size) * month_lengths).astype(np.int64)
    order = np.lexsort((signup_day, signup_month))
    signup_month, signup_day = signup_month[order], signup_day[order]

    purchase_rate = np.minimum(
        rng.gamma(config.purchase_rate_shape, config.purchase_rate_mean / config.purchase_rate_shape, size),
        config.purchase_rate_maximum,
    )
    dropout_rate = rng.gamma(config.lifetime_shape, config.mean_dropout_rate / config.lifetime_shape, size)
    lifetime_months = rng.exponential(1.0, size) / np.maximum(dropout_rate, 1e-9)
    first_order_at_signup = rng.random(size) < config.first_order_at_signup
    price_sensitivity = rng.standard_normal(size)
    responsiveness = rng.standard_normal(size)
    extra_items_rate = rng.gamma(config.spend_shape, config.mean_extra_items / config.spend_shape, size) * np.exp(
        -config.price_sensitivity_elasticity * price_sensitivity
    )
    affinity = rng.dirichlet(config.affinity_concentration * np.asarray(config.line_popularity) * config.n_lines, size)
    sleeping_dog = rng.random(size) < config.sleeping_dog_share
    suppression_probability = np.where(sleeping_dog, rng.beta(*config.suppression_beta, size), 0.0)
    consent_at_signup = rng.random(size) < config.consent_opt_in
    months_until_withdrawal = rng.geometric(config.consent_withdrawal_hazard, size)

    numbers = np.arange(first_number, first_number + size, dtype=np.int64)
    earliest = int(signup_month.min()) if size else 0
    signup_month_start = pd.to_datetime(
        [month_at(m, burn_in_start) for m in range(earliest, int(signup_month.max(initial=0)) + 1)]
    ).to_numpy(dtype="datetime64[D]")
    signup_date = signup_month_start[signup_month - earliest] + (signup_day - 1).astype("timedelta64[D]")
    traits = pd.DataFrame(
        {
            "customer_id": customer_ids(numbers),
            "customer_number": numbers,
            "cohort": np.full(size, cohort, dtype=np.int32),
            "signup_date": signup_date.astype("datetime64[us]"),
            "signup_month_index": signup_month.astype(np.int32),
            "signup_day": signup_day.astype(np.int32),
            "first_order_at_signup": first_order_at_signup,
            "purchase_rate": purchase_rate,
            "dropout_rate": dropout_rate,
            "lifetime_months": lifetime_months,
            # first month index in which the customer no longer buys: alive while month - signup < lifetime
            "death_month_index": (signup_month + np.maximum(np.ceil(lifetime_months), 1)).astype(np.int64),
            "extra_items_rate": extra_items_rate,
            "price_sensitivity": price_sensitivity,
            "responsiveness": responsiveness,
            "sleeping_dog": sleeping_dog,
            "suppression_probability": suppression_probability,
            "consent_at_signup": consent_at_signup,
            "consent_withdrawal_month_index": (signup_month + months_until_withdrawal).astype(np.int64),
        }
    )
    for key, column in zip(config.line_keys(), affinity.T, strict=True):
        traits[f"affinity_{key}"] = column
    return traits


def affinity_columns(config: SimulatorConfig) -> list[str]:
    return [f"affinity_{key}" for key in config.line_keys()]


def customer_ids(numbers: np.ndarray) -> pd.Series:
    """ "C0000001"-style ids for customer numbers."""
    return "C" + pd.Series(numbers, dtype=np.int64).astype(str).str.zfill(7)


def synthetic_contact_details(seed: int, config: SimulatorConfig, traits: pd.DataFrame) -> pd.DataFrame:
    """full_name, email and phone for a cohort's customers (synthetic: reserved example.* domains)."""
    cohort = int(traits["cohort"].iloc[0]) if len(traits) else 0
    rng = np.random.default_rng([seed, cohort_month_index(config, cohort), STREAM_PII, cohort])
    size = len(traits)
    first_names, last_names = np.asarray(config.first_names), np.asarray(config.last_names)
    first = first_names[rng.integers(0, len(first_names), size)]
    last = last_names[rng.integers(0, len(last_names), size)]
    domain = np.array(["example.com", "example.org", "example.net"])[rng.integers(0, 3, size)]
    first_s = pd.Series(first, dtype="str")
    last_s = pd.Series(last, dtype="str")
    number = traits["customer_number"].reset_index(drop=True)
    return pd.DataFrame(
        {
            "full_name": first_s + " " + last_s,
            "email": (
                first_s.str.lower()
                + "."
                + last_s.str.lower()
                + "."
                + number.astype(str)
                + "@"
                + pd.Series(domain, dtype="str")
            ),
            "phone": "+49 155 5" + number.astype(str).str.zfill(7),
        }
    )
