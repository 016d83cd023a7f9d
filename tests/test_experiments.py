"""The papers' experiments (experiments/*.py) run end to end in --quick mode.

Each script's main() writes its CSV and PNG into tmp_path; the CSV must have
the expected columns and show the qualitative result the paper states, where
that result is robust at quick size. Seeds are fixed, so these are
deterministic; the conditions are chosen to hold with a wide margin.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def load():
    """Import an experiment script as a module (its folder is not a package)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXPERIMENTS))
        yield importlib.import_module


def run_quick(module, out: Path, *extra: str) -> pd.DataFrame:
    module.main(["--quick", "--out", str(out), *extra])
    pngs = list(out.glob("*.png"))
    assert pngs and all(p.stat().st_size > 10_000 for p in pngs)
    assert not list(out.glob(".*.part"))  # atomic writes left no temporary file behind
    return pd.read_csv(out / f"{module.__name__}.csv")


def test_fig3_credit_lambda(load, tmp_path):
    mod = load("dipi_fig3_credit_lambda")
    df = run_quick(mod, tmp_path)
    assert list(df.columns) == mod.CSV_COLUMNS
    assert set(df.tech) == {"wind", "solar"}
    assert set(df.natural_factor) == {0.0, 0.1, 0.2}
    assert set(df.credit_rule) == set(mod.CREDIT_RULES)  # Fig. 3 for every credit rule
    assert df.credit_mean.between(0, 100).all()
    for rule in mod.CREDIT_RULES:
        assert (tmp_path / f"dipi_fig3_credit_lambda_{rule}.png").stat().st_size > 10_000
    # With lambda the credit stays higher: the paired gain is never negative and, at the
    # end of the run, significantly positive for every rule, technology and factor.
    assert (df.gain_mean >= -1e-12).all()
    last = df[df.transaction == df.transaction.max()]
    assert (last[last.natural_factor > 0].gain_ci_low > 0).all()
    for (_, _), d in last.groupby(["credit_rule", "tech"]):
        final = d.sort_values("natural_factor").credit_mean.to_numpy()
        assert np.all(np.diff(final) >= 0)


def test_fig4_mining_credit(load, tmp_path):
    mod = load("dipi_fig4_mining_credit")
    df = run_quick(mod, tmp_path)
    assert list(df.columns) == mod.CSV_COLUMNS
    for _, d in df.groupby(["mode", "tau"]):
        d = d.sort_values("credit")
        assert len(d) == 10 and d.credit.min() == 90 and d.credit.max() == 100
        assert np.isclose(d.p_theory.sum(), 1.0)
        # The chance rises with credit: rank correlation and bottom vs top, CIs apart.
        assert stats.spearmanr(d.credit, d.p_mean).statistic > 0.8
        assert d.p_ci_high.iloc[0] < d.p_ci_low.iloc[-1]
        assert d.chi2_pvalue.iloc[0] > 1e-3  # sampled and hashed follow e^(c/tau) / sum
    paper = df[(df["mode"] == "sampled") & (df.tau == 1)].sort_values("credit")
    assert paper.p_mean.iloc[-1] > 0.5  # tau = 1: the top credit wins most blocks
    assert set(df["mode"]) == {"sampled", "hashed"}


def test_der_cbc_fig8_distance(load, tmp_path):
    mod = load("der_cbc_fig8_distance")
    df = run_quick(mod, tmp_path).sort_values("distance_ohm")
    assert list(df.columns) == mod.CSV_COLUMNS
    assert len(df) == 10
    assert stats.spearmanr(df.distance_ohm, df.p_mean).statistic < -0.9
    assert df.p_ci_low.iloc[0] > df.p_ci_high.iloc[-1]
    # Negligible far away, not near.
    assert df.negligible.iloc[-1] and not df.negligible.iloc[0]


def test_der_cbc_fig9_cleanliness(load, tmp_path):
    mod = load("der_cbc_fig9_cleanliness")
    df = run_quick(mod, tmp_path)
    assert list(df.columns) == mod.CSV_COLUMNS
    sweep = df[df.group == "sweep"].sort_values("cleanliness_q")
    assert len(sweep) == 10
    assert {0.3, 0.6, 0.8} <= set(sweep.cleanliness_q.round(2))
    assert stats.spearmanr(sweep.cleanliness_q, sweep.p_mean).statistic > 0.9
    assert sweep.p_ci_high.iloc[0] < sweep.p_ci_low.iloc[-1]
    tech = df[df.group == "mix_by_technology"].set_index("technology")
    assert tech.p_mean["thermal"] < tech.p_mean["hydro"] < tech.p_mean["PV / wind"]


def test_centralized_vs_blockchain(load, tmp_path):
    mod = load("centralized_vs_blockchain")
    mod.main(["--quick", "--reps", "3", "--out", str(tmp_path)])
    summary = pd.read_csv(tmp_path / "centralized_vs_blockchain.csv").set_index("kpi")
    runs = pd.read_csv(tmp_path / "centralized_vs_blockchain_runs.csv")
    assert set(mod.KPIS) <= set(runs.columns) and set(mod.KPIS) == set(summary.index)
    for m in mod.MODES:
        assert {f"{m}_mean", f"{m}_ci_low", f"{m}_ci_high"} <= set(summary.columns)
    assert (tmp_path / "centralized_vs_blockchain.png").stat().st_size > 10_000
    central = runs[runs["mode"] == "centralized"]
    p2p = runs[runs["mode"] == "price_time"]
    # By construction: no direct trade and no credit change in centralized mode.
    assert (central.transaction_efficiency_pct == 0).all()
    assert (central.mean_credit_dpgc == 100).all()
    assert (p2p.transaction_efficiency_pct > 0).all()
    # Robust at any size: P2P trade at prices between F and R lowers what users pay per
    # kWh and what they buy from the grid (a paired difference over the same weather).
    assert summary.loc["user_cost_per_kwh", "diff_ci_high"] < 0
    assert summary.loc["grid_purchase_mwh", "diff_ci_high"] < 0
    assert np.allclose(central.user_cost_per_kwh, 0.657, atol=1e-3)
    # Fair definitions: in centralized mode every scheduled party is held to its schedule,
    # so the shared denominator equals the committed sides; under a flat tariff every
    # user pays R, so the effective-price spread is 0 there and positive with P2P prices.
    np.testing.assert_allclose(central.breach_rate_scheduled_pct, central.breach_rate_pct)
    assert (p2p.breach_rate_scheduled_pct <= p2p.breach_rate_pct + 1e-9).all()
    assert np.allclose(central.user_price_spread, 0.0, atol=1e-9)
    assert (p2p.user_price_spread > 0).all()
    # Parties that do not learn schedule the same energy in both modes: P2P moves money
    # (the grid company's margin) but not the system's cost or welfare.
    for kpi in ("system_cost_kyuan", "balancing_cost_kyuan", "welfare_kyuan"):
        assert abs(summary.loc[kpi, "diff_mean"]) < 1e-6 * summary.loc[kpi, "price_time_mean"]
    assert summary.loc["grid_company_surplus_kyuan", "diff_ci_high"] < 0


def test_attack_share(load, tmp_path):
    mod = load("attack_share")
    df = run_quick(mod, tmp_path, "--reps", "2")
    assert list(df.columns) == mod.CSV_COLUMNS
    assert set(df.consensus) == {"pow", "dpos", "poca"}
    pow_, poca = (df[df.consensus == r].set_index("hash_share") for r in ("pow", "poca"))
    # PoW: the miner's chance is its hash share; POCA: without credit almost nothing,
    # with a new party's credit at least its hash share again.
    assert np.allclose(pow_.expected_share_mean, pow_.index)
    assert (poca.expected_share_mean < 0.01 * poca.index).all()
    assert (poca.won_share_mean == 0).all()
    assert (poca.fresh_credit_share_mean >= 0.9 * poca.index).all()


def test_policy_frontier(load, tmp_path):
    mod = load("policy_frontier")
    df = run_quick(mod, tmp_path)
    runs = pd.read_csv(tmp_path / "policy_frontier_runs.csv")
    assert list(df.columns) == mod.SUMMARY_COLUMNS and list(runs.columns) == mod.RUN_COLUMNS
    # Every policy (and the strict-CMA arm) under both learning rules, paired seeds.
    assert set(runs.policy) == {*mod.POLICIES, mod.STRICT}
    assert set(runs.learning) == set(mod.LEARNING)
    assert runs.groupby("replication").seed.nunique().eq(1).all()
    assert set(df.kpi) == set(mod.KPIS)
    none = df[df.policy == "none"]
    assert (none.diff_mean == 0).all()  # the reference against itself
    # Only gates gate; only policies with payments move money; 'none' moves nothing.
    for col in ("gated_share_pct", "gated_share_last_pct"):
        gated = runs.groupby("policy")[col].max()
        assert (gated[[p for p in gated.index if "credit_gate" not in p]] == 0).all()
        assert (gated[[p for p in gated.index if "credit_gate" in p]] > 0).all()
    moved = runs.groupby("policy").consequence_kyuan.min()
    assert moved[["none", "credit_gate", mod.STRICT]].eq(0).all()
    assert (moved[["imbalance_penalty", "make_whole", "credit_scaled_reward"]] > 0).all()
    assert runs.breach_rate_last.between(0, 100).all()
    assert runs.user_cost_per_kwh.between(0.3, 0.7).all()
    # Who pays: the party types' net surpluses add up to the welfare in every run.
    surplus = runs[[f"surplus_{t}_kyuan" for t in mod.PAYERS]].sum(axis=1)
    np.testing.assert_allclose(surplus, runs.welfare_kyuan, rtol=1e-5)  # CSV: 6 digits
    who = pd.read_csv(tmp_path / "policy_frontier_who_pays.csv")
    assert set(who.party_type) >= {"grid_company", "balancing", "non-opportunists"}


def test_credit_mining_market(load, tmp_path):
    mod = load("credit_mining_market")
    df = run_quick(mod, tmp_path)
    assert list(df.columns) == mod.CSV_COLUMNS
    assert set(df.consensus) == {"poca", "der_cbc"}
    assert set(df.attribute[df.consensus == "der_cbc"]) == set(mod.BINS)
    assert set(df.attribute[df.consensus == "poca"]) == {"credit"}
    for (_, _), d in df.groupby(["consensus", "attribute"]):
        assert d.party_hour_share.sum() == pytest.approx(1.0, abs=1e-4)  # CSV: 6 digits
    # What the rules expect, through the market: more credit more blocks (POCA), farther
    # fewer (der_cbc).
    poca = df[(df.consensus == "poca") & (df.party_hour_share > 0)]
    assert stats.spearmanr(poca.low, poca.expected_rel_mean).statistic > 0.8
    far = df[(df.consensus == "der_cbc") & (df.attribute == "distance_ohm")
             & (df.party_hour_share > 0)]
    assert stats.spearmanr(far.low, far.expected_rel_mean).statistic < -0.8
    runs = pd.read_csv(tmp_path / "credit_mining_market_runs.csv")
    assert runs.groupby("replication").seed.nunique().eq(1).all()


def test_settlement_tables(load, tmp_path):
    mod = load("settlement_tables")
    df = run_quick(mod, tmp_path)
    # [DER-CBC] Table 2, to the fen
    assert df.buyer_pays.tolist() == [114.0, 125.14, 104.4]
    assert df.seller_income.tolist() == [110.0, 108.0, 108.8]
    assert df.grid_income.tolist() == [4.0, 17.14, -4.4]
    assert df.cumulative_volume_kwh.tolist() == [200, 420, 600]
    mc = pd.read_csv(tmp_path / "settlement_tables_monte_carlo.csv").set_index("delivery_ratio")
    assert list(mc.reset_index().columns) == mod.MC_COLUMNS
    assert (mc.max_imbalance_yuan < 1e-9).all()  # money conserved in every contract
    # a short seller's buyer pays more per kWh (the shortfall at R); a long seller earns
    # less per kWh generated (the surplus at F); CIs apart
    assert mc.buyer_price_ci_low[0.55] > mc.buyer_price_ci_high[1.05]
    assert mc.seller_price_ci_high[1.55] < mc.seller_price_ci_low[1.05]
    assert (mc[["buyer_price_mean", "seller_price_mean"]].stack().between(mod.F, mod.R)).all()


def _readme_table() -> dict[str, str]:
    """experiments/README.md's table of scripts: {script: its row}."""
    text = (EXPERIMENTS / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.split(r"\n\n", text) if b.startswith("| script |")]
    assert len(blocks) == 1
    return dict(re.findall(r"^\| `(\w+\.py)` \|(.*)$", blocks[0], re.M))


def test_every_script_is_listed_with_the_options_it_takes():
    """Every script is in the table, takes --out/--reps/--seed/--quick, writes a PNG
    and is run by a test."""
    table = _readme_table()
    scripts = {p.name for p in EXPERIMENTS.glob("*.py") if not p.name.startswith("_")}
    tests = [p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py")]
    assert set(table) == scripts
    for name in scripts:
        source = (EXPERIMENTS / name).read_text(encoding="utf-8")
        assert f"python experiments/{name} --out results/" in table[name]
        assert re.search(r"\bparser\(__doc__", source), name  # --out --reps --seed --quick
        assert "save_png(" in source, name
        assert any(re.search(rf"(\"|import ){name[:-3]}\b", t) for t in tests), name


def test_credit_memory(load, tmp_path):
    """Static opportunists end with less credit than the others, and a party's credit
    falls with its breach rate, under every rule (docs/model.md section 6)."""
    mod = load("credit_memory")
    df = run_quick(mod, tmp_path)
    assert list(df.columns) == mod.CSV_COLUMNS
    assert df.rule.tolist() == [r for r, _ in mod.QUICK_RULES] and (df.seeds == 2).all()
    assert (df.gap > 20).all() and (df.corr_breach_credit < -0.5).all()
    assert (df.gap_ci_low <= df.gap).all() and (df.gap <= df.gap_ci_high).all()
    assert (df.react_parties == 2).all() and df.react_after_300d_h.isna().all()


def test_ema_workbench_prim(load, tmp_path):
    pytest.importorskip("ema_workbench")
    mod = load("ema_workbench_prim")
    assert mod.main(["--quick", "--out", str(tmp_path)]) == 0
    assert all((tmp_path / f).stat().st_size > 10_000
               for f in ("prim_tradeoff.png", "feature_scores.png"))
    runs = pd.read_csv(tmp_path / "experiments.csv")
    assert len(runs) == 24 and set(mod.UNCERTAINTIES) <= set(runs.columns)
    box = pd.read_csv(tmp_path / "prim_box.csv")
    for k, lo, hi in box[["uncertainty", "min", "max"]].itertuples(index=False):
        assert mod.UNCERTAINTIES[k][0] <= lo <= hi <= mod.UNCERTAINTIES[k][1]
    scores = pd.read_csv(tmp_path / "feature_scores.csv").set_index("uncertainty")
    np.testing.assert_allclose(scores.sum(), 1.0, atol=1e-5)  # CSV: 6 digits


def test_feeder_fit(load, tmp_path):
    """The default population fits the IEEE 33-bus feeder (docs/model.md section 3)."""
    df = run_quick(load("feeder_fit"), tmp_path)
    assert len(df) == 2
    assert (df.peak_line_loading > 0).all() and (df.peak_line_loading <= 1.0 + 1e-9).all()
    assert (df.peak_load_kw < 1.3 * 3715).all()  # about the feeder's design load, not 4x it
