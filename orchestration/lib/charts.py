"""Small charts for Dagster metadata, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function takes a tidy DataFrame and returns PNG bytes (a few tens of kilobytes at most);
`markdown_image` embeds them in Markdown, which the Dagster UI shows inline (`MetadataValue.md`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # never a display, even when a DISPLAY is set

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 80
MAX_PNG_BYTES = 60_000
FONT_SIZE = 8


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def markdown_image(png: bytes, title: str) -> str:
    """Markdown that shows `png` inline (a data URI), with `title` as its alternative text."""
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{title}](data:image/png;base64,{encoded})"


def _annotate(axes, values: np.ndarray, text: Sequence[Sequence[str]], threshold: float) -> None:
    for row in range(values.shape[0]):
        for column in range(values.shape[1]):
            colour = "white" if values[row, column] > threshold else "black"
            axes.text(column, row, text[row][column], ha="center", va="center", color=colour, fontsize=FONT_SIZE)


def rfm_heat_map(counts: pd.DataFrame, title: str) -> bytes:
    """Customers per (recency score, frequency score): a 5 x 5 grid, R = 5 (most recent) at the top.

    `counts` has columns r_score, f_score, customers; missing cells count zero.
    """
    scores = list(range(1, 6))
    grid = (
        counts.pivot_table(index="r_score", columns="f_score", values="customers", aggfunc="sum")
        .reindex(index=scores[::-1], columns=scores)
        .fillna(0)
        .to_numpy()
    )
    total = grid.sum()
    figure = _figure(4.4, 3.6)
    axes = figure.add_subplot()
    image = axes.imshow(grid, cmap="Blues", aspect="auto")
    labels = [[f"{int(value):,}\n{value / total:.0%}" if total else "0" for value in row] for row in grid.tolist()]
    _annotate(axes, grid, labels, threshold=grid.max() * 0.6 if total else 1)
    axes.set_xticks(range(5), scores, fontsize=FONT_SIZE)
    axes.set_yticks(range(5), scores[::-1], fontsize=FONT_SIZE)
    axes.set_xlabel("frequency score (5 = most orders)", fontsize=FONT_SIZE)
    axes.set_ylabel("recency score (5 = most recent)", fontsize=FONT_SIZE)
    axes.set_title(title, fontsize=FONT_SIZE + 1)
    colour_bar = figure.colorbar(image, ax=axes, shrink=0.8)
    colour_bar.ax.tick_params(labelsize=FONT_SIZE - 1)
    colour_bar.set_label("customers", fontsize=FONT_SIZE)
    return _png(figure)


def cohort_retention_heat_map(
    retention: pd.DataFrame, title: str, max_cohorts: int = 24, max_months: int = 24
) -> bytes:
    """Share of each acquisition cohort ordering k months after its first order (rows: the latest
    `max_cohorts` cohorts, newest at the bottom; columns: k = 0 .. `max_months`).

    `retention` has columns acquisition_cohort, months_since_first_order, retention_share, cohort_size.
    """
    frame = retention[retention["months_since_first_order"] <= max_months]
    cohorts = sorted(frame["acquisition_cohort"].unique())[-max_cohorts:]
    frame = frame[frame["acquisition_cohort"].isin(cohorts)]
    grid = frame.pivot_table(
        index="acquisition_cohort", columns="months_since_first_order", values="retention_share", aggfunc="mean"
    ).reindex(index=cohorts, columns=range(int(frame["months_since_first_order"].max()) + 1 if len(frame) else 1))
    sizes = frame.groupby("acquisition_cohort")["cohort_size"].max().reindex(cohorts)
    figure = _figure(6.0, 0.9 + 0.2 * max(len(cohorts), 4))
    axes = figure.add_subplot()
    masked = np.ma.masked_invalid(grid.to_numpy(dtype=float))
    cmap = matplotlib.colormaps["YlGnBu"].with_extremes(bad="#f4f4f4")
    # Month 0 is 100% by definition: scale the colours on the later months so that differences show.
    later = masked[:, 1:] if masked.shape[1] > 1 else masked
    top = float(later.max()) if later.count() else 1.0
    image = axes.imshow(masked, cmap=cmap, aspect="auto", vmin=0, vmax=max(top, 0.01), interpolation="nearest")
    labels = [f"{pd.Timestamp(cohort):%Y-%m} (n={int(size):,})" for cohort, size in zip(cohorts, sizes, strict=True)]
    step = max(1, len(labels) // 16)
    axes.set_yticks(range(0, len(labels), step), labels[::step], fontsize=FONT_SIZE - 1)
    months = grid.columns.tolist()
    month_step = max(1, len(months) // 12)
    axes.set_xticks(range(0, len(months), month_step), months[::month_step], fontsize=FONT_SIZE - 1)
    axes.set_xlabel("months since first order", fontsize=FONT_SIZE)
    axes.set_title(title, fontsize=FONT_SIZE + 1)
    colour_bar = figure.colorbar(image, ax=axes, shrink=0.8, format=lambda value, _: f"{value:.0%}")
    colour_bar.ax.tick_params(labelsize=FONT_SIZE - 1)
    colour_bar.set_label("share of the cohort ordering", fontsize=FONT_SIZE)
    return _png(figure)


def clv_by_tier(tiers: pd.DataFrame, title: str) -> bytes:
    """Share of customers next to share of customer equity (sum of CLV) per pyramid tier, best tier on top.

    `tiers` has columns pyramid_tier, customers, customer_equity, in display order (best first).
    """
    customers = tiers["customers"].to_numpy(dtype=float)
    equity = tiers["customer_equity"].to_numpy(dtype=float)
    customer_share = customers / customers.sum() if customers.sum() else customers
    equity_share = equity / equity.sum() if equity.sum() else equity
    mean_clv = np.divide(equity, customers, out=np.zeros_like(equity), where=customers > 0)
    figure = _figure(5.2, 0.9 + 0.42 * max(len(tiers), 3))
    axes = figure.add_subplot()
    rows = np.arange(len(tiers))[::-1]
    height = 0.38
    axes.barh(rows + height / 2, customer_share, height, label="customers", color="#9ecae1")
    axes.barh(rows - height / 2, equity_share, height, label="customer equity (CLV)", color="#08519c")
    for row, share, value, mean in zip(rows, equity_share, equity, mean_clv, strict=True):
        axes.text(
            share + 0.01,
            row - height / 2,
            f"{share:.0%}  ({value:,.0f}; {mean:,.0f} each)",
            va="center",
            fontsize=FONT_SIZE - 1,
        )
    for row, share in zip(rows, customer_share, strict=True):
        axes.text(share + 0.01, row + height / 2, f"{share:.0%}", va="center", fontsize=FONT_SIZE - 1)
    axes.set_yticks(rows, tiers["pyramid_tier"].astype(str), fontsize=FONT_SIZE)
    axes.set_xlim(0, 1.35)
    axes.xaxis.set_major_formatter(lambda value, _: f"{value:.0%}" if value <= 1 else "")
    axes.tick_params(axis="x", labelsize=FONT_SIZE - 1)
    axes.legend(fontsize=FONT_SIZE - 1, loc="lower right", frameon=False)
    axes.set_title(title, fontsize=FONT_SIZE + 1)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return _png(figure)
