"""[DIPI] Fig. 3: a DPGC's integrated credit over repeated transactions, with and
without the natural weighting factor lambda.

What it reproduces. [DIPI] shows one DPGC's credit over a run of transactions
under the unweighted score and under the score with lambda, which forgives a
seller a shortfall of up to lambda*q that sun and wind caused: with lambda the
credit stays higher.

How. The model's own stochastic machinery drives it (dipi_abm.physics.weather.Weather,
default WeatherParams: Shanghai, from 21 June). One wind DPGC (2,000 kW) and one
solar DPGC (1,500 kW), the model's median capacities, each commit their
2-h-ahead forecast for an hour and deliver their actual output. Every hour whose
forecast is positive is one transaction (as in DIPIModel, where a DPGC offers
its whole forecast surplus at commitment ratio 1); it is scored with
dipi_abm.rules.credit.seller_score, s = 100 min(1, g / ((1 - lambda) q)), and the
credit is updated from 100 with every rule of dipi_abm.rules.credit.CREDIT_RULES
(``--credit-rules`` picks some), the `paper` rule C_n = (C_1 + ... + C_{n-1} + s_n) / n
among them; every rule sees the same transactions (a rule whose memory is set in
hours counts each transaction as one hour after the previous one). Each repetition has its own
weather (one SeedSequence child per repetition); within a repetition every
lambda sees the same weather (common random numbers), so the lambda effect is
estimated as a paired difference. The figure shows the mean credit path over
the repetitions with its 95 % confidence band (Student t) and one repetition's
own path for each lambda (thin line), the kind of single path the paper plots.

    python experiments/dipi_fig3_credit_lambda.py --out results/fig3
    python experiments/dipi_fig3_credit_lambda.py --quick          # smoke test

Writes ``dipi_fig3_credit_lambda.csv`` (with a ``credit_rule`` column),
``dipi_fig3_credit_lambda.png`` (every rule, one row each) and one detailed figure per
rule, ``dipi_fig3_credit_lambda_<rule>.png`` (mean, CI, a typical path, paired gain).

Where and why it may differ from the paper. [DIPI] plots one DPGC's path from a
handful of hand-set outcomes; here shortfalls come from simulated weather and
forecast errors, so levels differ: a solar DPGC's 2-h-ahead error is small
(about 3 % of capacity) and its credit stays near 97-100 either way, while a
wind DPGC often commits a positive forecast for an hour in which the wind falls
below cut-in and delivers nothing (score 0), so its credit settles near 80.
The paper's recursion averages the party's *previous credit values*: unrolled,
C_n = sum_{k<n} s_k / (k (k + 1)) + s_n / n, so the first score keeps weight 1/2
forever, the second 1/6, the third 1/12. Paths therefore flatten after a few
transactions, the level is set by the first hours, and repetitions spread
widely (a wind DPGC whose first commitment met a calm hour stays below 50).
The other rules (`ema`, `window`, ...) forget. The lambda effect is
therefore shown twice: the mean paths with their CI bands (which overlap at
small --reps because repetitions differ so much) and the paired gain over
lambda = 0 (same weather), which is tight. The printed paper does not give
its lambda; 0.1 and 0.2 bracket the model's default (0.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    PALETTE,
    Timer,
    mean_ci,
    parse,
    parser,
    rep_streams,
    save_csv,
    save_png,
    style,
)

from dipi_abm.physics.weather import SOLAR, WIND, Weather, WeatherParams
from dipi_abm.rules.credit import CREDIT_RULES, CreditState, seller_score, update_credit

TECHS = {"wind": (WIND, 2000.0), "solar": (SOLAR, 1500.0)}  # code, capacity kW (model medians)
CSV_COLUMNS = ["credit_rule", "tech", "natural_factor", "transaction", "credit_mean",
               "credit_ci_low", "credit_ci_high", "credit_sd", "gain_mean", "gain_ci_low",
               "gain_ci_high", "score_mean", "reps"]


def draw_transactions(ss: np.random.SeedSequence, n_tx: int, min_commit_share: float,
                      params: WeatherParams) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The first ``n_tx`` (committed, delivered) kWh pairs of each DPGC in one weather run.

    A transaction is an hour whose 2-h-ahead forecast exceeds ``min_commit_share`` of
    capacity; the DPGC commits the forecast and delivers the actual output.
    """
    codes = np.array([TECHS[t][0] for t in TECHS], np.int8)
    cap = np.array([TECHS[t][1] for t in TECHS])
    weather = Weather(tech=codes, capacity_kw=cap, load_class=np.full(codes.size, -1, np.int8),
                      mean_load_kw=np.zeros(codes.size), params=params, seed=ss)
    q = [[] for _ in TECHS]
    g = [[] for _ in TECHS]
    max_hours = 200 * n_tx  # a DPGC never offering in that long is a bug, not bad weather
    for _ in range(max_hours):
        hour = weather.step()
        for j in range(codes.size):
            if len(q[j]) < n_tx and hour.gen_forecast_kw[j] > min_commit_share * cap[j]:
                q[j].append(hour.gen_forecast_kw[j])
                g[j].append(hour.gen_actual_kw[j])
        if min(len(x) for x in q) >= n_tx:
            break
    else:
        raise RuntimeError(f"fewer than {n_tx} transactions in {max_hours} hours")
    return {t: (np.array(q[j]), np.array(g[j])) for j, t in enumerate(TECHS)}


def credit_paths(committed: np.ndarray, delivered: np.ndarray, natural_factor: float,
                 rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Credit after 0..n transactions (reps x n+1) and the scores (reps x n)."""
    reps, n_tx = committed.shape
    state = CreditState.new(reps, 100.0, window=24)
    path = np.empty((reps, n_tx + 1))
    path[:, 0] = state.credit
    scores = seller_score(delivered, committed, natural_factor)
    everyone = np.arange(reps)
    one = np.ones(reps, np.int64)
    for t in range(n_tx):
        update_credit(rule, state, everyone, scores[:, t], one)
        path[:, t + 1] = state.credit
    return path, scores


def run(reps: int, seed: int, n_tx: int, lambdas: Sequence[float], rules: Sequence[str],
        min_commit_share: float) -> tuple[pd.DataFrame, dict]:
    """Every credit rule over the same weather draws: paths[rule][tech, lambda]."""
    params = WeatherParams()
    draws = [draw_transactions(ss, n_tx, min_commit_share, params)
             for ss in rep_streams(seed, reps)]
    frames, paths = [], {}
    for rule in rules:
        df, paths[rule] = run_rule(draws, n_tx, lambdas, rule)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)[CSV_COLUMNS], paths


def run_rule(draws: list[dict], n_tx: int, lambdas: Sequence[float],
             rule: str) -> tuple[pd.DataFrame, dict]:
    reps = len(draws)
    rows, paths = [], {}
    base = min(lambdas)
    for tech in TECHS:
        q = np.stack([d[tech][0] for d in draws])
        g = np.stack([d[tech][1] for d in draws])
        base_path, _ = credit_paths(q, g, base, rule)
        for lam in lambdas:
            path, scores = credit_paths(q, g, lam, rule)
            paths[tech, lam] = path
            mean, lo, hi = mean_ci(path)
            # Paired: the same weather under both factors.
            gain, gain_lo, gain_hi = mean_ci(path - base_path)
            sd = path.std(axis=0, ddof=1)
            score_mean = np.concatenate([[np.nan], scores.mean(axis=0)])
            rows.append(pd.DataFrame({
                "credit_rule": rule, "tech": tech, "natural_factor": lam,
                "transaction": np.arange(n_tx + 1),
                "credit_mean": mean, "credit_ci_low": lo, "credit_ci_high": hi,
                "credit_sd": sd, "gain_mean": gain, "gain_ci_low": gain_lo,
                "gain_ci_high": gain_hi, "score_mean": score_mean, "reps": reps}))
    return pd.concat(rows, ignore_index=True), paths


def typical_rep(paths: dict, tech: str, lam: float) -> int:
    """The repetition whose final credit is the median one (a typical DPGC)."""
    final = paths[tech, lam][:, -1]
    return int(np.argsort(final, kind="stable")[final.size // 2])


def plot_rules(df: pd.DataFrame, paths: dict, lambdas: Sequence[float], reps: int,
               path: Path) -> None:
    """Fig. 3 for every credit rule: one row per rule, mean credit with its CI band."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    style()
    rules = list(paths)
    fig, axes = plt.subplots(len(rules), len(TECHS), figsize=(13, 3.3 * len(rules) + 1),
                             sharex=True, squeeze=False)
    for row, rule in zip(axes, rules, strict=True):
        for ax, tech in zip(row, TECHS, strict=True):
            for k, lam in enumerate(lambdas):
                d = df[(df.credit_rule == rule) & (df.tech == tech) & (df.natural_factor == lam)]
                color = PALETTE[k % len(PALETTE)]
                ax.plot(d.transaction, d.credit_mean, color=color, lw=2.2)
                ax.fill_between(d.transaction, d.credit_ci_low.clip(upper=100.0),
                                d.credit_ci_high.clip(upper=100.0), color=color, alpha=0.25,
                                lw=0)
            ax.set_title(f"{rule} rule, {tech} DPGC", fontsize=12)
            ax.set_xlim(0, df.transaction.max())
        row[0].set_ylabel("credit Cₙ")
    for ax in axes[-1]:
        ax.set_xlabel("transaction n")
    handles = [Line2D([], [], color=PALETTE[k % len(PALETTE)], lw=2.4,
                      label="λ = 0 (unweighted)" if lam == 0 else f"λ = {lam:g}")
               for k, lam in enumerate(lambdas)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"[DIPI] Fig. 3 under every credit rule: mean credit and 95 % CI over "
                 f"{reps:,} weather repetitions (the same weather for every rule and λ)")
    fig.tight_layout()
    save_png(fig, path)


def plot(df: pd.DataFrame, paths: dict, lambdas: Sequence[float], rule: str, reps: int,
         path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    style()
    fig, grid = plt.subplots(2, len(TECHS), figsize=(13, 8.2), sharex=True,
                             gridspec_kw={"height_ratios": [2.2, 1]})
    axes, gain_axes = grid
    base = min(lambdas)
    for ax, gax, tech in zip(axes, gain_axes, TECHS, strict=True):
        lows = []
        one = typical_rep(paths, tech, base)
        for k, lam in enumerate(lambdas):
            d = df[(df.tech == tech) & (df.natural_factor == lam)]
            color = PALETTE[k % len(PALETTE)]
            ax.plot(d.transaction, d.credit_mean, color=color, lw=2.4)
            ax.fill_between(d.transaction, d.credit_ci_low.clip(upper=100.0),
                            d.credit_ci_high.clip(upper=100.0), color=color, alpha=0.25, lw=0)
            ax.plot(d.transaction, paths[tech, lam][one], color=color, lw=1.0, alpha=0.8,
                    ls="--")
            lows.append(min(d.credit_ci_low.min(), paths[tech, lam][one].min()))
            if lam != base:
                gax.plot(d.transaction, d.gain_mean, color=color, lw=2.2)
                gax.fill_between(d.transaction, d.gain_ci_low, d.gain_ci_high, color=color,
                                 alpha=0.25, lw=0)
        cap = TECHS[tech][1]
        ax.set_title(f"{tech} DPGC ({cap:,.0f} kW)")
        gax.axhline(0.0, color="0.4", lw=0.8)
        gax.set_xlabel("transaction n (one delivery hour, committed 2 h ahead)")
        ax.set_ylim(max(0.0, min(lows) - 2.0), 100.8)
        ax.set_xlim(0, df.transaction.max())
    axes[0].set_ylabel(f"integrated credit Cₙ\n(0–100, {rule} rule)")
    gain_axes[0].set_ylabel(f"credit gain over\nλ = {base:g} (paired)")
    handles = [Line2D([], [], color=PALETTE[k % len(PALETTE)], lw=2.4,
                      label="λ = 0 (unweighted)" if lam == 0 else f"λ = {lam:g}")
               for k, lam in enumerate(lambdas)]
    handles += [Line2D([], [], color="0.3", lw=2.4, label="mean over repetitions"),
                Patch(color="0.3", alpha=0.25, label="95 % CI of the mean"),
                Line2D([], [], color="0.3", lw=1.0, ls="--",
                       label=f"one typical DPGC (median final credit at λ = {base:g})")]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False,
               bbox_to_anchor=(0.5, -0.075))
    fig.suptitle("[DIPI] Fig. 3: DPGC credit with and without the natural weighting factor λ")
    fig.text(0.5, -0.095, f"Commitment = 2-h-ahead forecast, delivery = simulated actual output "
             f"(dipi_abm.physics.weather); seller score 100·min(1, g/((1−λ)q)); "
             f"{reps:,} weather repetitions, each seen by every λ.",
             ha="center", fontsize=10, color="0.3")
    fig.tight_layout()
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = parser(__doc__, out="results/dipi_fig3", reps=1000, quick_reps=40,
                reps_help="weather repetitions")
    ap.add_argument("--transactions", type=int, default=None,
                    help="transactions per DPGC (default 200; 100 with --quick)")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.1, 0.2],
                    help="natural weighting factors to compare (default 0 0.1 0.2)")
    ap.add_argument("--credit-rules", nargs="+", default=list(CREDIT_RULES),
                    choices=list(CREDIT_RULES),
                    help="credit update rules to compare (default: every rule); each gets "
                    "its own detailed figure dipi_fig3_credit_lambda_<rule>.png")
    ap.add_argument("--min-commit-share", type=float, default=0.0,
                    help="commit only hours whose forecast exceeds this share of capacity "
                         "(default 0: every hour with a positive forecast, as DIPIModel)")
    args = parse(ap, argv)
    n_tx = args.transactions or (100 if args.quick else 200)
    for lam in args.lambdas:
        if not 0.0 <= lam < 0.3:
            ap.error(f"--lambdas {lam}: the natural weighting factor must lie in [0, 0.3)")
    timer = Timer()
    rules = list(dict.fromkeys(args.credit_rules))
    df, paths = run(args.reps, args.seed, n_tx, args.lambdas, rules, args.min_commit_share)
    out = Path(args.out)
    save_csv(df, out / "dipi_fig3_credit_lambda.csv")
    plot_rules(df, paths, args.lambdas, args.reps, out / "dipi_fig3_credit_lambda.png")
    for rule in rules:
        plot(df[df.credit_rule == rule], paths[rule], args.lambdas, rule, args.reps,
             out / f"dipi_fig3_credit_lambda_{rule}.png")

    base = min(args.lambdas)
    for rule in rules:
        print(f"[DIPI] Fig. 3: credit after {n_tx} transactions ({args.reps} repetitions, "
              f"`{rule}` rule; mean [95 % CI])")
        for tech in TECHS:
            for lam in args.lambdas:
                last = df[(df.credit_rule == rule) & (df.tech == tech)
                          & (df.natural_factor == lam)].iloc[-1]
                diff = paths[rule][tech, lam][:, -1] - paths[rule][tech, base][:, -1]
                m, lo, hi = mean_ci(diff)
                extra = "" if lam == base else (
                    f"   paired gain over λ={base:g}: {float(m):+.2f} [{float(lo):+.2f}, "
                    f"{float(hi):+.2f}]")
                print(f"  {tech:5s} λ={lam:<4g} {last.credit_mean:6.2f} "
                      f"[{last.credit_ci_low:6.2f}, {last.credit_ci_high:6.2f}]{extra}")
    print(f"written to {out} in {timer}")
    return df


if __name__ == "__main__":
    main()
