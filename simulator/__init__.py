"""The embedded default world: a seeded simulated multi-product company with hidden ground truth.

The platform sees only `SimulatedWorld`'s observable tables (customers, orders, products, contact_log)
and hands it campaign contacts (`deliver`, `seal_month`). The hidden traits and true treatment effects
are read by `simulator.ground_truth` and `simulator.evaluation`, for tests and benchmarks only.
"""

from simulator.world import MonthAlreadySealed, SimulatedWorld, WorldNotReady

__all__ = ["MonthAlreadySealed", "SimulatedWorld", "WorldNotReady"]
