"""Only the simulator and its evaluation read the hidden ground truth of the simulated world."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_PACKAGES = ("orchestration", "models", "expectations")
# The one platform module allowed to ask the simulator's evaluation for true effects: the report that
# labels them `true_*` next to the measured ones.
EVALUATION_READERS = {Path("orchestration/lib/reports.py")}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _platform_files() -> list[Path]:
    return [path for package in PLATFORM_PACKAGES for path in (ROOT / package).rglob("*.py")]


def test_platform_code_never_imports_the_ground_truth():
    offenders = [
        str(path.relative_to(ROOT))
        for path in _platform_files()
        if any(name.startswith("simulator.ground_truth") for name in _imported_modules(path))
    ]
    assert not offenders


def test_only_the_report_asks_the_evaluation():
    readers = {
        path.relative_to(ROOT)
        for path in _platform_files()
        if any(name.startswith("simulator.evaluation") for name in _imported_modules(path))
    }
    assert readers <= EVALUATION_READERS


def test_platform_code_never_opens_the_ground_truth_folder():
    offenders = [str(path.relative_to(ROOT)) for path in _platform_files() if "ground_truth" in path.read_text()]
    assert not offenders


def test_the_world_emits_no_hidden_traits(tmp_path):
    from simulator import SimulatedWorld

    world = SimulatedWorld(tmp_path, seed=3, n_customers=300)
    first = world.first_month
    emitted = set()
    for frame in (world.customers(first), world.orders(first), world.products(), world.contact_log(first)):
        emitted |= set(frame.columns)
    allowed = {
        "customer_id",
        "full_name",
        "email",
        "phone",
        "signup_date",
        "email_consent",
        "order_id",
        "order_date",
        "product_id",
        "quantity",
        "amount",
        "discount_code",
        "discount_amount",
        "order_source",
        "product_line",
        "product_name",
        "unit_price",
        "unit_cost",
        "campaign_id",
        "offer_id",
        "channel",
        "contacted_at",
        "opened",
        "clicked",
        "unsubscribed",
    }
    assert emitted <= allowed, emitted - allowed
