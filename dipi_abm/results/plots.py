"""The plots a person looks at first (matplotlib, Agg backend, PNG).

Each series is one line or one filled band whatever the run's length: runs
longer than :data:`~dipi_abm.results.collect.DAILY_AFTER_HOURS` are drawn per
day (daily totals or means), so a year costs about what a fortnight does.
Every plot reads the hourly KPIs (model.parquet) or the credit band summarised
as the per-party records were written; none needs the per-party table.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .collect import DAILY_AFTER_HOURS  # noqa: E402
from .files import atomic_write  # noqa: E402

COLORS = {"dpgc": "#1b7837", "user": "#2166ac", "p2p": "#e08214", "grid": "#7f7f7f",
          "sale": "#b2abd2", "curtailed": "#d6604d"}

#: Legend below the axes, where it cannot cover the data.
LEGEND_BELOW = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.16), "ncol": 4}
#: Legend right of the axes (for stacked panels).
LEGEND_RIGHT = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}


def _daily(hourly: pd.DataFrame) -> bool:
    return len(hourly) > DAILY_AFTER_HOURS


def _per_day(hourly: pd.DataFrame, sums: list[str], means: list[str]) -> pd.DataFrame:
    """Daily totals of ``sums`` and daily means of ``means``; ``day`` is the day's middle."""
    day = (hourly["hour"].to_numpy() - 1) // 24
    g = hourly[sums + means].groupby(day)
    out = pd.concat([g[sums].sum(), g[means].mean()], axis=1) if sums else g[means].mean()
    out["day"] = out.index.to_numpy() + 0.5
    return out.reset_index(drop=True)


def _smooth(series: pd.Series, points: int) -> pd.Series:
    window = max(1, min(24, points // 14 or 1))
    return series.rolling(window, min_periods=1, center=True).mean()


def _finish(ax: plt.Axes, title: str, ylabel: str, legend: dict | None) -> None:
    ax.set_xlabel("day")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend is not None:
        ax.legend(frameon=False, **legend)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def plot_breaches(hourly: pd.DataFrame, path: Path) -> None:
    """Breaches by party type (stacked, per hour or per day) and the breach rate."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    if _daily(hourly):
        d = _per_day(hourly, ["breaches_dpgc", "breaches_user"],
                     ["breach_rate_dpgc", "breach_rate_user"])
        x, unit = d["day"].to_numpy(), "day"
        counts = d["breaches_dpgc"].to_numpy(), d["breaches_user"].to_numpy()
        rate = {label: 100 * d[col]
                for label, col in (("DPGCs", "breach_rate_dpgc"), ("users", "breach_rate_user"))}
        rate_label = "breach rate, % (daily mean)"
    else:
        x, unit = hourly["hour"].to_numpy() / 24.0, "hour"
        counts = hourly["breaches_dpgc"].to_numpy(), hourly["breaches_user"].to_numpy()
        rate = {label: 100 * _smooth(hourly[col], len(hourly))
                for label, col in (("DPGCs", "breach_rate_dpgc"), ("users", "breach_rate_user"))}
        rate_label = "breach rate, % (smoothed)"
    # One band per party type (a step outline), however many hours: no bar per hour.
    ax1.stackplot(x, *counts, colors=[COLORS["dpgc"], COLORS["user"]], alpha=0.8,
                  labels=["DPGCs", "users"], step="mid")
    ax1.set_ylabel(f"breaches per {unit}")
    ax1.legend(frameon=False, **LEGEND_RIGHT)
    ax1.set_title("Contract breaches (a side delivering or taking less than agreed)")
    colors = {"DPGCs": COLORS["dpgc"], "users": COLORS["user"]}
    for label, series in rate.items():
        ax2.plot(x, series, color=colors[label], label=label, lw=1.2)
    ax2.set_ylim(bottom=0)
    _finish(ax1, "", f"breaches per {unit}", None)
    _finish(ax2, "", rate_label, LEGEND_RIGHT)
    ax1.set_xlabel("")
    _save(fig, path)


def credit_limits(band: pd.DataFrame) -> tuple[float, float]:
    """A credit axis fitted to the data: the 10-90 % bands and the means with a margin,
    never past the scale's ends (0 and 100)."""
    cols = [c for c in band.columns if c != "hour"]
    values = band[cols].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 100.5
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.08 * (hi - lo), 0.5)
    return max(0.0, lo - pad), min(100.5, hi + pad)


def plot_credit(band: pd.DataFrame, path: Path) -> None:
    """Credit by party type: mean and 10-90 % band of the parties' credit."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = band["hour"].to_numpy() / 24.0
    for label, name in (("dpgc", "DPGCs"), ("user", "users")):
        mean = band[f"{label}_mean"]
        if not np.isfinite(mean).any():
            continue
        ax.fill_between(x, band[f"{label}_p10"], band[f"{label}_p90"], color=COLORS[label],
                        alpha=0.15, label=f"{name}: 10-90 % of parties")
        ax.plot(x, mean, color=COLORS[label], lw=2, label=f"{name}: mean")
    ax.set_ylim(*credit_limits(band))
    _finish(ax, "Credit by party type", "credit (scale 0-100)", LEGEND_BELOW)
    _save(fig, path)


def plot_volumes(hourly: pd.DataFrame, path: Path) -> None:
    """Where energy came from: P2P delivered and bought from the grid, sold and curtailed."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    cols = ["p2p_delivered_kwh", "grid_purchase_kwh", "grid_sale_kwh", "curtailed_kwh"]
    if _daily(hourly):
        d = _per_day(hourly, cols, [])
        x, unit, scale = d["day"].to_numpy(), "MWh per day", 1e-3
    else:
        d = hourly
        x, unit, scale = hourly["hour"].to_numpy() / 24.0, "MWh per hour", 1e-3
    ax.stackplot(x, d["p2p_delivered_kwh"] * scale, d["grid_purchase_kwh"] * scale,
                 colors=[COLORS["p2p"], COLORS["grid"]], alpha=0.85,
                 labels=["P2P delivered", "bought from the grid"])
    ax.plot(x, -d["grid_sale_kwh"] * scale, color=COLORS["sale"], lw=1.2,
            label="sold to the grid (negative)")
    if d["curtailed_kwh"].sum() > 0:
        ax.plot(x, -d["curtailed_kwh"] * scale, color=COLORS["curtailed"], lw=1,
                label="curtailed (negative)")
    ax.axhline(0, color="black", lw=0.6)
    _finish(ax, "Where energy came from: P2P trades vs the grid company", unit, LEGEND_BELOW)
    _save(fig, path)


def plot_prices(hourly: pd.DataFrame, path: Path) -> None:
    """Volume-weighted clearing price (+/- 1 sd) between the feed-in and retail prices."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    cols = ["price_mean", "price_std", "retail_price", "feed_in_price"]
    if _daily(hourly):
        d = _per_day(hourly, [], cols)
        x, how = d["day"].to_numpy(), "daily mean"
    else:
        d = hourly
        x, how = hourly["hour"].to_numpy() / 24.0, "hourly"
    mean = d["price_mean"]
    sd = d["price_std"].fillna(0.0)
    ax.fill_between(x, mean - sd, mean + sd, color=COLORS["p2p"], alpha=0.25,
                    label="clearing price +/- 1 sd (volume-weighted)")
    ax.plot(x, mean, color=COLORS["p2p"], lw=1.5, label="mean clearing price")
    ax.step(x, d["retail_price"], where="mid", color="black", lw=1, ls="--",
            label="retail R")
    ax.step(x, d["feed_in_price"], where="mid", color="black", lw=1, ls=":",
            label="feed-in F")
    _finish(ax, f"P2P clearing prices between the feed-in and retail prices ({how})",
            "yuan / kWh", LEGEND_BELOW)
    _save(fig, path)


def plot_run(hourly: pd.DataFrame, credit_band: pd.DataFrame, folder: Path) -> list[str]:
    """Write the run's PNGs into ``folder``; return their file names.

    ``credit_band`` is :meth:`CreditBand.dataframe` of the run's party records.
    """
    plot_breaches(hourly, folder / "breaches.png")
    plot_credit(credit_band, folder / "credit.png")
    plot_volumes(hourly, folder / "volumes.png")
    plot_prices(hourly, folder / "prices.png")
    return ["breaches.png", "credit.png", "volumes.png", "prices.png"]
