"""How many threads a model fit may use.

scikit-learn's histogram gradient boosting parallelises with OpenMP. On small inputs the threads spend more
time synchronising than working, and when another process busy-waits on the same cores (two loop runs, a test
runner, dbt) GNU OpenMP's spinning threads can slow a fit of a few thousand rows from under a second to
minutes. Small fits therefore run on one thread; large fits use every core.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from threadpoolctl import threadpool_limits

#: Below this many training rows a fit runs single-threaded.
PARALLEL_FIT_MIN_ROWS = 200_000


def fit_threads(n_rows: int) -> AbstractContextManager:
    """Context manager limiting OpenMP/BLAS threads for a fit on ``n_rows`` rows (see module docstring)."""
    return threadpool_limits(limits=1 if n_rows < PARALLEL_FIT_MIN_ROWS else None)
