"""How the analyse stage splits a customer base that does not fit in memory: scoring chunks and a training sample.

Every score depends only on its own customer's orders and on the fitted models (:mod:`models.scoring`), so the
customer base is scored one chunk of customers at a time: chunk ``i`` holds the customers whose id lies in
``[starts[i], starts[i + 1])`` in the warehouse's (binary) string order, at most ``customers_per_chunk`` of
them (:func:`customer_ranges`). The memory of scoring is then that of one chunk, whatever the size of the base.

The models are fitted on a training sample of at most ``training_customers`` customers: all of them while the
base is that small, otherwise the customers whose MD5 hash of the id falls in the first ``slots`` of
:data:`HASH_SLOTS` equal slots (:func:`training_sample`). The hash makes the sample a simple random sample of
customers that is the same on every run, every engine (DuckDB and Spark both have ``md5``) and every month (a
customer stays in or out of it), and the parameters fitted on it estimate those of the whole base, since the
models treat customers as independent draws from one population (BG/NBD and Gamma-Gamma: Fader, Hardie & Lee
2005; the classifiers: i.i.d. rows). Sampling the unit of analysis rather than its rows keeps every sampled
customer's whole history, so no feature or label is cut short.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Hex digits of the MD5 of a customer id that place her in a slot (16^4 slots of 1/65,536 of the base each).
HASH_PREFIX_DIGITS = 4
HASH_SLOTS = 16**HASH_PREFIX_DIGITS

#: Defaults of the analyse stage (the warehouse resource's ``customers_per_chunk`` and ``training_customers``).
DEFAULT_CUSTOMERS_PER_CHUNK = 200_000
DEFAULT_TRAINING_CUSTOMERS = 400_000


@dataclass(frozen=True)
class CustomerRange:
    """The customers whose id lies in ``[first, stop)`` (``None``: no bound on that side)."""

    first: str | None = None
    stop: str | None = None

    @property
    def everyone(self) -> bool:
        return self.first is None and self.stop is None

    def contains(self, customer_ids: Iterable[str]) -> np.ndarray:
        """Which of ``customer_ids`` lie in the range (Python's string order is the binary order of UTF-8)."""
        ids = [str(customer_id) for customer_id in customer_ids]
        return np.array(
            [(self.first is None or i >= self.first) and (self.stop is None or i < self.stop) for i in ids], dtype=bool
        )


def customer_ranges(starts: Sequence[str]) -> list[CustomerRange]:
    """The chunks whose first customer ids are ``starts`` (sorted, the first one the base's first id): one
    range per start, the first open below and the last open above, so that together they cover every id."""
    if len(starts) <= 1:
        return [CustomerRange()]
    if list(starts) != sorted(starts) or len(set(starts)) != len(starts):
        raise ValueError(f"chunk starts must be distinct and sorted, got {list(starts)[:5]}...")
    bounds: list[str | None] = [None, *starts[1:], None]
    return [CustomerRange(bounds[i], bounds[i + 1]) for i in range(len(starts))]


@dataclass(frozen=True)
class TrainingSample:
    """The customers the models are fitted on: those whose id hashes into the first ``slots`` slots."""

    slots: int = HASH_SLOTS
    customers_in_base: int = 0

    @property
    def everyone(self) -> bool:
        return self.slots >= HASH_SLOTS

    @property
    def share(self) -> float:
        """The expected share of the base in the sample."""
        return min(self.slots, HASH_SLOTS) / HASH_SLOTS

    @property
    def hash_prefix_below(self) -> str | None:
        """The sample in SQL: ``substr(md5(customer_id), 1, 4) < hash_prefix_below`` (lowercase hex digits of
        the same length compare as the numbers they write); None for everyone (no filter)."""
        return None if self.everyone else f"{self.slots:0{HASH_PREFIX_DIGITS}x}"

    def contains(self, customer_ids: Iterable[str]) -> np.ndarray:
        """Which of ``customer_ids`` are in the sample (the SQL filter's rule, in Python)."""
        if self.everyone:
            return np.ones(len(list(customer_ids)), dtype=bool)
        return np.array([hash_slot(customer_id) < self.slots for customer_id in customer_ids], dtype=bool)


def hash_slot(customer_id: str) -> int:
    """The slot of a customer: the first :data:`HASH_PREFIX_DIGITS` hex digits of the MD5 of her id (UTF-8)."""
    return int(hashlib.md5(str(customer_id).encode("utf-8")).hexdigest()[:HASH_PREFIX_DIGITS], 16)


def training_sample(customers_in_base: int, training_customers: int = DEFAULT_TRAINING_CUSTOMERS) -> TrainingSample:
    """Everyone while the base has at most ``training_customers`` customers; otherwise the slots that hold
    about ``training_customers`` of them (never fewer than one slot)."""
    if training_customers < 1:
        raise ValueError(f"training_customers must be >= 1, got {training_customers}")
    if customers_in_base <= training_customers:
        return TrainingSample(HASH_SLOTS, customers_in_base)
    slots = max(1, math.floor(HASH_SLOTS * training_customers / customers_in_base))
    return TrainingSample(slots, customers_in_base)


def chunk_count(customers_in_base: int, customers_per_chunk: int = DEFAULT_CUSTOMERS_PER_CHUNK) -> int:
    """How many scoring chunks a base of ``customers_in_base`` customers takes (at least one)."""
    if customers_per_chunk < 1:
        raise ValueError(f"customers_per_chunk must be >= 1, got {customers_per_chunk}")
    return max(1, math.ceil(customers_in_base / customers_per_chunk))
