"""Command line: `dipi-abm run`, `dipi-abm keys`, and how bad input is reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import dipi_abm
from dipi_abm import cli
from dipi_abm.config import all_params

CMD = [sys.executable, "-m", "dipi_abm.cli"]
OPTIONS = ["--config", "--hours", "--seed", "--out", "--grid", "--set"]

# docs/model.md section 9, per hour
KPI_COLUMNS = ["p2p_volume_kwh", "grid_purchase_kwh", "grid_sale_kwh", "curtailed_kwh", "breaches",
               "breaches_dpgc", "breaches_user", "breach_rate", "breach_shortfall_kwh",
               "breach_shortfall_dpgc_kwh", "breach_shortfall_user_kwh", "mean_credit_dpgc",
               "std_credit_dpgc", "mean_credit_user", "std_credit_user", "price_mean", "price_std",
               "transaction_efficiency", "user_cost_yuan", "dpgc_income_yuan", "grid_income_yuan",
               "clean_share", "block_producer", "producer_credit"]
SUMMARY_KEYS = ["hours", "seed", "breach_rate", "p2p_volume_kwh", "grid_purchase_kwh",
                "grid_sale_kwh", "mean_credit_dpgc", "mean_credit_user", "transaction_efficiency",
                "price_std", "version"]
PNGS = ["breaches.png", "credit.png", "volumes.png", "prices.png"]

RADIAL_EDGES = (
    "# root: 1\nfrom,to,r_ohm,x_ohm\n1,2,0.1,0.05\n2,3,0.2,0.1\n3,4,0.15,0.1\n"
    "2,5,0.3,0.2\n5,6,0.1,0.05\n"
)


def _files(root: Path) -> dict[str, Path]:
    """Input files for the runs."""
    root.mkdir(parents=True, exist_ok=True)
    files = {"wrong_type.toml": 'hours = "ten"\n',
             "disconnected.csv": "1 2 0.1\n2 3 0.2\n7 8 0.1\n",
             "negative.csv": "1 2 0.1\n2 3 -0.2\n3 4 0.1\n", "radial.csv": RADIAL_EDGES,
             "negative_hours.toml": "hours = -3\n"}
    out = {}
    for name, text in files.items():
        (root / name).write_text(text)
        out[name] = root / name
    return out


# name: (arguments, strings the one-line error must contain)
BAD = {
    "natural_factor": (["--set", "natural_factor=0.5"], ["natural_factor", "[0, 0.3)"]),
    "unknown_key": (["--set", "nosuchkey=1"], ["nosuchkey", "see `dipi-abm keys`"]),
    "config_value_overridden": (["--config", "{dir}/negative_hours.toml", "--hours", "5"],
                                ["negative_hours.toml", "line 1", "hours = -3"]),
    "hours_0": (["--hours", "0"], ["hours", "[1, "]),
    "hours_not_int": (["--hours", "abc"], ["--hours", "abc"]),
    "missing_config": (["--config", "{dir}/missing.toml"], ["missing.toml"]),
    "config_wrong_type": (["--config", "{dir}/wrong_type.toml"], ["hours", "integer"]),
    "grid_disconnected": (["--grid", "{dir}/disconnected.csv"],
                          ["disconnected.csv", "disconnected"]),
    "grid_negative": (["--grid", "{dir}/negative.csv"], ["negative.csv", "negative"]),
    "grid_missing": (["--grid", "{dir}/nosuchgrid.csv"], ["nosuchgrid.csv"]),
    "set_no_equals": (["--set", "n_users"], ["n_users", "KEY=VALUE"]),
}
GOOD = ["run", "--hours", "24", "--seed", "3", "--set", "n_users=20"]


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """Call cli.main in-process; argparse errors exit through SystemExit."""
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    _files(root)
    return root


#: bad inputs also checked in a real process (exit status, stderr, no traceback)
BAD_IN_SUBPROCESS = ["grid_disconnected", "hours_not_int"]


def bad_argv(name: str, root: Path) -> tuple[list[str], Path]:
    out = root / f"bad_{name}"
    return ["run", *[a.format(dir=root) for a in BAD[name][0]], "--out", str(out)], out


@pytest.fixture(scope="module")
def runs(root):
    """The subprocess runs, started at once (they are independent)."""
    jobs: dict[str, tuple[list[str], Path | None]] = {
        "help": (["--help"], None),
        "good1": ([*GOOD, "--out", str(root / "good1")], root / "good1"),
    }
    for name in BAD_IN_SUBPROCESS:
        jobs[f"bad_{name}"] = bad_argv(name, root)
    procs = {
        name: subprocess.Popen([*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=root)
        for name, (args, _) in jobs.items()
    }
    results = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        results[name] = (proc.returncode, stdout, stderr, jobs[name][1])
    return results


def test_help(runs, capsys):
    rc, out, err, _ = runs["help"]
    assert rc == 0, err
    assert "run" in out and "keys" in out
    rc, out, err = run_main(["run", "--help"], capsys)
    assert rc == 0, err
    for option in OPTIONS:
        assert option in out, option


def test_run_writes_results(runs):
    rc, stdout, stderr, out = runs["good1"]
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    model = pd.read_parquet(out / "model.parquet")
    assert len(model) == 24
    assert model["hour"].tolist() == list(range(1, 25))
    for col in KPI_COLUMNS:
        assert col in model.columns, col
    agents = pd.read_parquet(out / "agents.parquet")
    n_parties = 10 + 20  # default n_dpgc, --set n_users=20
    assert len(agents) == 24 * n_parties
    for col in ("hour", "agent_id", "credit", "balance", "committed_kwh", "delivered_kwh",
                "blocks_won", "kind", "bus"):
        assert col in agents.columns, col
    assert set(agents["kind"].astype(str)) == {"dpgc", "user"}
    assert agents["credit"].between(0, 100).all()

    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert summary["hours"] == 24 and summary["seed"] == 3
    assert summary["version"] == dipi_abm.__version__
    assert summary["params"]["n_users"] == 20
    assert 0.0 <= summary["breach_rate"] <= 1.0
    # the summary agrees with the hourly table
    for key in ("p2p_volume_kwh", "grid_purchase_kwh", "grid_sale_kwh"):
        assert summary[key] == pytest.approx(model[key].sum(), rel=1e-9)
    assert summary["mean_credit_dpgc"] == pytest.approx(model["mean_credit_dpgc"].iloc[-1])
    assert summary["mean_credit_user"] == pytest.approx(model["mean_credit_user"].iloc[-1])
    assert summary["breaches"] == model["breaches"].sum()
    for png in PNGS:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert png in summary["files"]
    assert not list(out.glob("*.part")) and not list(out.glob(".*"))


def test_same_command_twice_same_tables(runs, root, capsys):
    """The subprocess run and the same command in-process write the same tables."""
    a = runs["good1"][3]
    b = root / "good2"
    rc, _, err = run_main([*GOOD, "--out", str(b)], capsys)
    assert rc == 0, err
    for name in ("model.parquet", "agents.parquet"):
        assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name), check_exact=True)
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    # The chain heads hash the genesis, which registers each run's fresh Ed25519 keys
    # (never derived from the seed, which the genesis publishes): same lengths, other heads.
    heads_a, heads_b = sa.pop("chains"), sb.pop("chains")
    assert [heads_a[c]["blocks"] for c in ("DU1", "JY1", "LH1")] == [
        heads_b[c]["blocks"] for c in ("DU1", "JY1", "LH1")]
    assert heads_a["JY1"]["head"] != heads_b["JY1"]["head"]
    assert heads_a["authority_key"] != heads_b["authority_key"]
    assert sa == sb


def _check_rejected(rc, stderr, out, name):
    assert rc == 2, (rc, stderr)
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "error" in lines[0]
    for needle in BAD[name][1]:
        assert needle in lines[0], (needle, lines[0])
    # nothing was written
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_exits_2_with_one_line(name, root, capsys):
    argv, out = bad_argv(name, root)
    rc, _, err = run_main(argv, capsys)
    _check_rejected(rc, err, out, name)


@pytest.mark.parametrize("name", BAD_IN_SUBPROCESS)
def test_bad_input_in_a_real_process(runs, name):
    rc, _, stderr, out = runs[f"bad_{name}"]
    _check_rejected(rc, stderr, out, name)


def test_grid_edge_list_file(root, capsys):
    out = root / "grid_file"
    rc, _, err = run_main(
        ["run", "--hours", "6", "--seed", "1", "--no-plots", "--quiet", "--grid",
         str(root / "radial.csv"), "--set", "n_dpgc=5", "--set", "n_users=20", "--out", str(out)],
        capsys,
    )
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_buses"] == 6
    agents = pd.read_parquet(out / "agents.parquet")
    assert set(agents["bus"]) <= {"2", "3", "4", "5", "6"}  # never the substation (root 1)
    assert not any((out / png).exists() for png in PNGS)  # --no-plots


def test_keys_lists_every_key(capsys):
    assert cli.main(["keys"]) == 0
    out = capsys.readouterr().out
    for p in all_params():
        assert p.name in out, p.name
    assert cli.main(["keys", "--markdown"]) == 0
    out = capsys.readouterr().out
    for p in all_params():
        assert f"`{p.name}`" in out, p.name


def test_main_returns_2_in_process(tmp_path, capsys):
    out = tmp_path / "o"
    rc = cli.main(["run", "--hours", "5", "--set", "natural_factor=0.3", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "natural_factor" in err
    assert not out.exists()


def test_out_is_an_existing_file(root, capsys):
    """--out naming a regular file is bad input too: exit 2, one line, the file untouched."""
    target = root / "not_a_folder.txt"
    target.write_text("keep me\n")
    argv = ["run", "--hours", "2", "--quiet", "--no-plots", "--set", "n_users=20"]
    rc, _, err = run_main([*argv, "--out", str(target)], capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(target) in lines[0]
    assert target.read_text() == "keep me\n"


def test_keys_into_a_closed_pipe_says_nothing(tmp_path):
    """Issue 13: `dipi-abm keys | head` ended in a BrokenPipeError traceback."""
    for argv in (["keys"], ["keys", "--markdown"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the first line: every write fails
        proc = subprocess.Popen([*CMD, *argv], stdout=write, stderr=subprocess.PIPE, text=True)
        os.close(write)
        _, err = proc.communicate(timeout=120)
        assert err == "" and proc.returncode == 0, err


# ------------------------------------------------------------------ the output folder
SMALL = ["run", "--hours", "4", "--quiet", "--no-plots", "--set", "n_users=8",
         "--set", "n_dpgc=3"]


def _hidden_siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


def test_a_folder_with_other_files_is_refused_without_force(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    rc, _, err = run_main([*SMALL, "--out", str(out)], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert str(out) in err and "'notes.txt'" in err and "--force" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert _hidden_siblings(out) == []

    rc, _, err = run_main([*SMALL, "--seed", "4", "--out", str(out), "--force"], capsys)
    assert rc == 0, err
    assert (out / "notes.txt").read_text() == "keep me\n"
    assert json.loads((out / "summary.json").read_text())["seed"] == 4
    assert _hidden_siblings(out) == [] and not list(out.glob(".*"))


def test_an_earlier_result_is_replaced_whole_and_leftovers_removed(tmp_path, capsys):
    out = tmp_path / "res"
    rc, _, err = run_main([*SMALL, "--seed", "1", "--out", str(out)], capsys)
    assert rc == 0, err
    # what killed runs leave: a temporary file inside, a partial folder beside
    (out / ".model.parquet.abc123.part").write_bytes(b"half")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".res.partial-{dead.pid}-xyz"
    stale.mkdir()
    (stale / "model.parquet").write_bytes(b"half")
    rc, _, err = run_main([*SMALL, "--seed", "2", "--out", str(out)], capsys)
    assert rc == 0, err
    assert json.loads((out / "summary.json").read_text())["seed"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["agents.parquet", "model.parquet",
                                                     "summary.json"]
    assert _hidden_siblings(out) == []


def test_a_killed_rerun_never_leaves_the_earlier_result_looking_complete(tmp_path, capsys):
    """Issue 14: a run killed while re-running into an --out folder left the earlier
    summary.json, so the folder looked complete."""
    out = tmp_path / "res"
    rc, _, err = run_main([*SMALL, "--seed", "1", "--out", str(out)], capsys)
    assert rc == 0, err
    proc = subprocess.Popen([*CMD, *SMALL, "--hours", "200000", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not any(".partial-" in n for n in _hidden_siblings(out)):
            assert proc.poll() is None and time.monotonic() < deadline, "never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (out / "summary.json").exists()  # the folder reads as interrupted
    rc, _, err = run_main([*SMALL, "--seed", "3", "--out", str(out)], capsys)
    assert rc == 0, err
    assert json.loads((out / "summary.json").read_text())["seed"] == 3
    assert _hidden_siblings(out) == []  # the killed run's partial folder is gone


def test_force_into_the_current_folder_keeps_its_files(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(work)
    rc, _, err = run_main([*SMALL, "--out", "."], capsys)
    assert rc == 2 and "--force" in err
    rc, _, err = run_main([*SMALL, "--out", ".", "--force"], capsys)
    assert rc == 0, err
    assert sorted(p.name for p in work.iterdir()) == ["agents.parquet", "model.parquet",
                                                      "notes.txt", "summary.json"]
    assert _hidden_siblings(work) == []
