"""The plots a person looks at first (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .output import atomic_write  # noqa: E402

if TYPE_CHECKING:
    from ..model import DIPIModel

COLORS = {"dpgc": "#1b7837", "user": "#2166ac", "p2p": "#e08214", "grid": "#7f7f7f",
          "sale": "#b2abd2", "curtailed": "#d6604d"}


def _smooth(series: pd.Series, hours: int) -> pd.Series:
    window = max(1, min(24, hours // 14 or 1))
    return series.rolling(window, min_periods=1, center=True).mean()


def _days(hours: pd.Series) -> np.ndarray:
    return hours.to_numpy() / 24.0


def _finish(ax: plt.Axes, title: str, ylabel: str, legend: dict) -> None:
    ax.set_xlabel("day")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, **legend)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def plot_breaches(hourly: pd.DataFrame, path: Path) -> None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    x = _days(hourly["hour"])
    n = len(hourly)
    ax1.bar(x, hourly["breaches_dpgc"], width=1 / 24, color=COLORS["dpgc"], label="DPGCs",
            alpha=0.8)
    ax1.bar(x, hourly["breaches_user"], width=1 / 24, bottom=hourly["breaches_dpgc"],
            color=COLORS["user"], label="users", alpha=0.8)
    ax1.set_ylabel("breaches per hour")
    ax1.legend(loc="upper right", frameon=False)
    ax1.set_title("Contract breaches (a side delivering or taking less than agreed)")
    for col, label, color in (("breach_rate_dpgc", "DPGCs", COLORS["dpgc"]),
                              ("breach_rate_user", "users", COLORS["user"])):
        ax2.plot(x, 100 * _smooth(hourly[col], n), color=color, label=label)
    ax2.set_ylabel("breach rate, % (smoothed)")
    ax2.set_xlabel("day")
    ax2.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    _save(fig, path)


def plot_credit(agents: pd.DataFrame, model: DIPIModel, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    df = agents[agents["Step"] > 0]
    kind = pd.Series(np.where(model.state.kind == 0, "dpgc", "user"), index=model.party_ids)
    df = df.assign(kind=kind.reindex(df["AgentID"]).to_numpy())
    for label, name in (("dpgc", "DPGCs"), ("user", "users")):
        g = df[df["kind"] == label].groupby("Step")["credit"]
        q = g.quantile([0.1, 0.5, 0.9]).unstack()
        mean = g.mean()
        x = q.index.to_numpy() / 24.0
        ax.fill_between(x, q[0.1], q[0.9], color=COLORS[label], alpha=0.15,
                        label=f"{name}: 10-90 % of parties")
        ax.plot(x, mean, color=COLORS[label], lw=2, label=f"{name}: mean")
    ax.set_ylim(min(80, float(df["credit"].min()) - 2) if len(df) else 0, 100.5)
    _finish(ax, "Credit by party type", "credit (0-100)", {"loc": "lower left", "ncol": 2})
    _save(fig, path)


def plot_volumes(hourly: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = _days(hourly["hour"])
    mwh = 1e-3
    ax.stackplot(x, hourly["p2p_delivered_kwh"] * mwh, hourly["grid_purchase_kwh"] * mwh,
                 colors=[COLORS["p2p"], COLORS["grid"]], alpha=0.85,
                 labels=["P2P delivered", "bought from the grid"])
    ax.plot(x, -hourly["grid_sale_kwh"] * mwh, color=COLORS["sale"], lw=1.2,
            label="sold to the grid (negative)")
    if hourly["curtailed_kwh"].sum() > 0:
        ax.plot(x, -hourly["curtailed_kwh"] * mwh, color=COLORS["curtailed"], lw=1,
                label="curtailed (negative)")
    ax.axhline(0, color="black", lw=0.6)
    _finish(ax, "Where energy came from: P2P trades vs the grid company", "MWh per hour",
            {"loc": "upper left", "ncol": 2})
    _save(fig, path)


def plot_prices(hourly: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = _days(hourly["hour"])
    mean = hourly["price_mean"]
    sd = hourly["price_std"].fillna(0.0)
    ax.fill_between(x, mean - sd, mean + sd, color=COLORS["p2p"], alpha=0.25,
                    label="clearing price +/- 1 sd (volume-weighted)")
    ax.plot(x, mean, color=COLORS["p2p"], lw=1.5, label="mean clearing price")
    ax.step(x, hourly["retail_price"], where="mid", color="black", lw=1, ls="--",
            label="retail R")
    ax.step(x, hourly["feed_in_price"], where="mid", color="black", lw=1, ls=":",
            label="feed-in F")
    _finish(ax, "P2P clearing prices between the feed-in and retail prices", "yuan / kWh",
            {"loc": "upper center", "bbox_to_anchor": (0.5, -0.14), "ncol": 4})
    _save(fig, path)


def plot_run(hourly: pd.DataFrame, agents: pd.DataFrame, model: DIPIModel,
             folder: Path) -> list[str]:
    """Write the run's PNGs into ``folder``; return their file names."""
    plot_breaches(hourly, folder / "breaches.png")
    plot_credit(agents, model, folder / "credit.png")
    plot_volumes(hourly, folder / "volumes.png")
    plot_prices(hourly, folder / "prices.png")
    return ["breaches.png", "credit.png", "volumes.png", "prices.png"]
