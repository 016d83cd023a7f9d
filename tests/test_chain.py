"""The ledger in a run: chains, node attributes from the ledger, CLI verify (docs/model.md §7)."""

import hashlib
import json
import platform
import shutil
import sqlite3
import stat
import subprocess
import sys
from importlib import metadata

import networkx as nx
import numpy as np
import pytest

from dipi_abm import DIPIModel
from dipi_abm.ledger.coloredcoin import GENERATED, TRANSFERRED, decode_credit_updates
from dipi_abm.ledger.keys import AUTHORITY, KeyRing
from dipi_abm.ledger.records import node_attributes_from_ledger, source_sha256
from dipi_abm.ledger.store import read_meta
from dipi_abm.ledger.verify import verify_ledger
from dipi_abm.physics.grid import save_graphml

SMALL = dict(n_dpgc=4, n_users=16)


def test_every_period_adds_one_block_per_chain_and_verifies():
    m = DIPIModel(seed=1, hours=12, **SMALL).run()
    for chain in ("DU1", "JY1", "LH1"):
        blocks = m.ledger.blocks(chain)
        assert [b.index for b in blocks] == list(range(13))  # genesis + 12 hours
        assert [b.hour for b in blocks] == list(range(13))
        assert all(b.producer == m.addresses[0] or b.producer in m.addresses
                   for b in blocks[1:])
    report = m.verify_ledger()
    assert report.ok and report.blocks == 39


def test_block_producer_on_the_chain_is_the_models_winner():
    m = DIPIModel(seed=2, hours=10, **SMALL)
    for _ in range(10):
        m.step()
        assert m.ledger.head("LH1").producer == m.addresses[m.block_winner]


@pytest.mark.parametrize("mode", ["sampled", "hashed"])
def test_node_attributes_from_a_full_ledger_match_the_model(mode):
    m = DIPIModel(seed=3, hours=24, ledger_detail="full", poca_mode=mode,
                  poca_difficulty_bits=6, n_miners=2, **SMALL).run()
    attrs = node_attributes_from_ledger(m.ledger)
    balance = np.concatenate([m.state.balance, m.miner_balance])
    credit = np.concatenate([m.state.credit.credit, np.zeros(2)])
    np.testing.assert_allclose(attrs["balance"], balance, rtol=0, atol=1e-6)
    np.testing.assert_allclose(attrs["credit"], credit, rtol=0, atol=0.005)  # centi-credits
    assert list(attrs["address"]) == m.addresses
    party = m.parties[5]
    assert party.node_attributes["address"] == attrs["address"][5]
    assert m.verify_ledger().ok


def test_credit_updates_are_colored_coin_transactions():
    m = DIPIModel(seed=4, hours=6, ledger_detail="full", **SMALL).run()
    genesis = m.ledger.read_records("LH1", 0)["credit"]
    label, exponent, credit = decode_credit_updates(genesis["sequence"], genesis["value"])
    assert (label == GENERATED).all() and (credit[: m.state.n] == 100.0).all()
    later = [m.ledger.read_records("LH1", b.index)["credit"] for b in m.ledger.blocks("LH1")[1:]]
    labels = np.concatenate([decode_credit_updates(t["sequence"], t["value"])[0] for t in later])
    assert labels.size > 0 and (labels == TRANSFERRED).all()


def test_lh1_commits_to_the_periods_du1_and_jy1_roots():
    m = DIPIModel(seed=5, hours=4, ledger_detail="full", **SMALL).run()
    for h in range(1, 5):
        linked = m.ledger.read_records("LH1", h)["chains"]
        roots = dict(zip(linked["chain"].tolist(), linked["merkle_root"].tolist(), strict=True))
        assert roots == {c: m.ledger.blocks(c)[h].merkle_root for c in ("DU1", "JY1")}


def test_hashed_blocks_carry_a_nonce_that_meets_the_target(tmp_path):
    path = tmp_path / "l.sqlite"
    m = DIPIModel(seed=6, hours=8, poca_mode="hashed", poca_difficulty_bits=6, ledger=str(path),
                  **SMALL).run()
    m.close()
    blocks = sqlite3.connect(path).execute(
        "SELECT nonce, target FROM blocks WHERE chain='LH1' AND block_index > 0").fetchall()
    assert all(int(t, 16) > 0 for _, t in blocks)
    assert verify_ledger(path).ok
    db = sqlite3.connect(path)
    db.execute("UPDATE blocks SET nonce = nonce + 1 WHERE chain='LH1' AND block_index = 3")
    db.commit()
    db.close()
    report = verify_ledger(path)
    assert not report.ok and (report.chain, report.index) == ("LH1", 3)


def test_interrupted_run_leaves_a_valid_prefix_of_whole_periods(tmp_path, monkeypatch):
    path = tmp_path / "l.sqlite"
    m = DIPIModel(seed=7, hours=20, ledger=str(path), **SMALL)
    m.run(5)
    m.ledger.sync()  # the five periods are in (the writer thread appends them)
    real_store = m.ledger._store

    def interrupted(*args, **kw):  # the period's rows are written, then the run stops
        real_store(*args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(m.ledger, "_store", interrupted)
    with pytest.raises(KeyboardInterrupt):
        m.step()
        m.ledger.sync()  # the period is appended by the writer thread: its error comes here
    m.close()
    report = verify_ledger(path)
    assert report.ok and report.blocks == 3 * 6  # genesis + 5 whole periods
    assert read_meta(path)["seed"] == str(m.seed)


def test_ledger_path_that_exists_is_refused_before_the_run(tmp_path):
    path = tmp_path / "l.sqlite"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="already exists"):
        DIPIModel(seed=1, ledger=str(path), **SMALL)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dipi_abm.cli", *args], capture_output=True,
                          text=True)


def test_cli_run_with_ledger_then_verify_then_tamper(tmp_path):
    path = tmp_path / "chain.sqlite"
    r = _cli("run", "--hours", "6", "--seed", "3", "--out", str(tmp_path / "out"), "--quiet",
             "--no-plots", "--ledger", str(path), "--set", "n_users=12")
    assert r.returncode == 0, r.stderr
    r = _cli("verify-ledger", str(path))
    assert r.returncode == 0 and "intact" in r.stdout
    db = sqlite3.connect(path)
    db.execute("UPDATE record_digests SET digest = zeroblob(32) "
               "WHERE chain = 'JY1' AND block_index = 4")
    db.commit()
    db.close()
    r = _cli("verify-ledger", str(path))
    assert r.returncode == 1 and "JY1 block 4" in r.stdout
    for bad in (tmp_path / "missing.sqlite", tmp_path / "out" / "summary.json"):
        r = _cli("verify-ledger", str(bad))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_cli_keys_and_anchored_verify(tmp_path):
    """--keys saves the private keys owner-only; --summary and --head anchor the check,
    and catch the newest period removed from all three chains, which nothing else can."""
    path, keys, out = tmp_path / "chain.sqlite", tmp_path / "keys.json", tmp_path / "out"
    r = _cli("run", "--hours", "5", "--seed", "4", "--out", str(out), "--quiet", "--no-plots",
             "--ledger", str(path), "--keys", str(keys), "--set", "n_users=12")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert not list(tmp_path.glob("*.part"))
    ring = KeyRing.load(keys)
    db = sqlite3.connect(path)
    producers = {p for (p,) in db.execute("SELECT producer FROM blocks")}
    db.close()
    assert AUTHORITY in producers and producers <= set(ring.names)
    summary = out / "summary.json"
    heads = json.loads(summary.read_text())["chains"]
    assert {c: heads[c]["blocks"] for c in ("DU1", "JY1", "LH1")} == {"DU1": 6, "JY1": 6,
                                                                       "LH1": 6}
    assert heads["authority_key"] == ring.public_keys()[AUTHORITY].hex()
    r = _cli("verify-ledger", str(path))
    assert r.returncode == 0 and "intact" in r.stdout and "not checked: chain heads" in r.stdout
    r = _cli("verify-ledger", str(path), "--summary", str(summary))
    assert r.returncode == 0 and "not checked" not in r.stdout, r.stdout
    truncated = tmp_path / "truncated.sqlite"
    shutil.copyfile(path, truncated)
    db = sqlite3.connect(truncated)
    for t in ("blocks", "record_rows", "record_columns", "record_digests"):
        db.execute(f"DELETE FROM {t} WHERE block_index = 5")
    db.commit()
    db.close()
    r = _cli("verify-ledger", str(truncated))
    assert r.returncode == 0 and "not checked: chain heads" in r.stdout
    r = _cli("verify-ledger", str(truncated), "--summary", str(summary))
    assert r.returncode == 1 and "DU1 block 5: truncated" in r.stdout, r.stdout
    r = _cli("verify-ledger", str(truncated), "--head", f"LH1:{heads['LH1']['head']}")
    assert r.returncode == 1 and "LH1: the anchored head is not on the chain" in r.stdout
    bad_inputs = [
        ("run", "--hours", "1", "--out", str(out), "--keys", str(keys)),  # exists
        ("run", "--hours", "1", "--out", str(out), "--keys", str(tmp_path / "no" / "k")),
        ("run", "--hours", "1", "--out", str(out), "--keys", str(tmp_path / "k2"),
         "--set", "ledger_detail='off'"),
        ("verify-ledger", str(path), "--head", "LH1:xyz"),
        ("verify-ledger", str(path), "--head", f"XY1:{'0' * 64}"),
        ("verify-ledger", str(path), "--summary", str(tmp_path / "missing.json")),
        ("verify-ledger", str(path), "--summary", str(keys)),
        ("verify-ledger", str(path), "--summary", str(summary), "--head",
         f"LH1:{heads['LH1']['head']}"),
    ]
    # refused before the run starts, leaving nothing behind: a path the run would swap
    # away with --out, one it cannot write, a ledger with ledger_detail off
    bad_inputs += [
        ("run", "--hours", "1", "--out", str(out), "--keys", str(out / "k")),
        ("run", "--hours", "1", "--out", str(out), "--ledger", str(out / "l.sqlite")),
        ("run", "--hours", "1", "--out", str(tmp_path / "o3"), "--keys", "/proc/dipi-keys"),
        ("run", "--hours", "1", "--out", str(tmp_path / "o3"), "--ledger",
         str(tmp_path / "l3.sqlite"), "--set", "ledger_detail='off'"),
        ("verify-ledger", str(path), "--authority-key", "ABC"),
    ]
    for args in bad_inputs:
        r = _cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert not (tmp_path / "k2").exists() and not (tmp_path / "o3").exists()
    assert not (tmp_path / "l3.sqlite").exists() and not (out / "k").exists()
    r = _cli("verify-ledger", str(path), "--authority-key", heads["authority_key"], "--head",
             f"LH1:{heads['LH1']['head']}")
    assert r.returncode == 0 and "grid company's key" not in r.stdout, r.stdout
    assert "not checked: chain heads of DU1, JY1" in r.stdout
    r = _cli("verify-ledger", str(path), "--authority-key", "ab" * 32)
    assert r.returncode == 1 and "JY1 block 0" in r.stdout and "re-signed" in r.stdout


def test_a_refused_out_leaves_no_ledger_behind(tmp_path):
    """--out is checked before the ledger file is made, so the corrected rerun works."""
    out, ledger = tmp_path / "out", tmp_path / "l.sqlite"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ("run", "--hours", "2", "--quiet", "--no-plots", "--ledger", str(ledger),
            "--set", "n_users=12", "--out")
    r = _cli(*args, str(out))
    assert r.returncode == 2 and "not empty" in r.stderr and not ledger.exists()
    r = _cli(*args, str(tmp_path / "out2"))
    assert r.returncode == 0, r.stderr
    assert verify_ledger(ledger).ok


def test_closed_ledger_is_one_file_even_while_a_reader_holds_it(tmp_path):
    """The write-ahead log is checkpointed at close: the .sqlite file alone, copied
    elsewhere, holds every period (the dashboard or another reader may hold it open)."""
    path = tmp_path / "l.sqlite"
    m = DIPIModel(seed=9, hours=8, ledger=str(path), **SMALL)
    m.run(4)
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT COUNT(*) FROM blocks").fetchone() == (15,)
    m.run(4)
    m.close()
    (tmp_path / "copy").mkdir()
    copy = tmp_path / "copy" / "l.sqlite"
    shutil.copyfile(path, copy)
    reader.close()
    report = verify_ledger(copy, m.summary()["chains"])
    assert report.ok and report.blocks == 27 and report.unchecked == ()


def test_block_production_kpis_are_reported():
    m = DIPIModel(seed=8, hours=48, n_miners=1, miner_hash_power=5.0, **SMALL).run()
    h = m.hourly_dataframe()
    for col in ("blocks_gini", "blocks_nakamoto", "low_credit_block_share", "win_credit_corr"):
        assert col in h
    s = m.summary()
    assert 0 <= s["blocks_gini"] <= 1 and s["blocks_nakamoto"] >= 1
    assert s["producers"] == int((m.node_blocks_won > 0).sum())
    assert sum(p["blocks"] for p in s["top_producers"]) <= 48


def test_the_genesis_commits_the_run_identity(tmp_path):
    """DU1's genesis names one run and one build: a fresh run id (two runs of one seed
    differ), the grid file's content hash, the source hash, Python, numpy, numba."""
    g = nx.path_graph(6)
    nx.set_edge_attributes(g, 0.2, "r_ohm")
    save_graphml(g, tmp_path / "feeder.graphml")
    metas = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.sqlite"
        DIPIModel(seed=6, hours=2, grid=str(tmp_path / "feeder.graphml"), ledger=str(path),
                  **SMALL).run().close()
        metas.append(read_meta(path))
    a, b = metas
    assert a["run_id"] != b["run_id"] and len(a["run_id"]) == 32
    digest = hashlib.sha256((tmp_path / "feeder.graphml").read_bytes()).hexdigest()
    assert a["grid_sha256"] == b["grid_sha256"] == digest
    assert a["source_sha256"] == source_sha256() and len(source_sha256()) == 64
    assert a["python"] == platform.python_version() and a["numpy"] == np.__version__
    assert a["numba"] in (metadata.version("numba"), "not installed")
