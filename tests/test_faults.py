"""Faults as a tester meets them (issue 23), one class per kind of fault: each ends in one
line and its documented exit status (docs/robustness.md), leaves nothing it did not
finish, and is refused before the first run where it can be checked.
``pytest tests/test_faults.py -q --co | cut -d: -f3 | sort | uniq -c`` counts the cases
by class.

Most cases call ``dipi_abm.cli.main`` in this process (the fault is injected where a
real disk, memory or Ctrl-C would raise it); Ctrl-C, stdout on a full device, a process
memory limit and a ledger being written run in a real process.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dipi_abm import cli
from dipi_abm import config as cfg
from dipi_abm.dashboard import controls as ctl
from dipi_abm.dashboard.runner import ModelRunner
from dipi_abm.dashboard.security import (
    MAX_UPLOAD_BYTES,
    SameOriginMiddleware,
    Uploads,
    check_page_values,
)
from dipi_abm.errors import ConfigError
from dipi_abm.model import DIPIModel
from dipi_abm.physics import grid as grid_mod
from dipi_abm.sweep import engine

TINY = ["--hours", "3", "--seed", "1", "--set", "n_users=8", "--set", "n_dpgc=2", "--no-plots",
        "--quiet"]
SPEC = """[sweep]\ndesign = "factorial"\nreplications = 1\nseed = 3\n
[base]\nn_dpgc = 2\nn_users = 8\nhours = 3\n{extra}"""
LONG = "x" * 300


def cli_run(argv: list, capsys) -> tuple[int, str]:
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


def one_line(err: str, status: int, rc: int, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert rc == status, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "\x1b" not in err
    for n in needles:
        assert n in err, (n, err)


def no_result(folder: Path) -> None:
    assert not (folder / "summary.json").exists()
    assert not [p for p in folder.parent.glob(f".{folder.name}*")], "a temporary was left"


def _grid_file(path: Path, n: int) -> Path:
    """A radial edge list of ``n + 1`` buses."""
    path.write_text("".join(f"{i // 2} {i + 1} 0.1\n" for i in range(n)))
    return path


def _sweep(tmp_path: Path, extra: str, *opts: str) -> list:
    (tmp_path / "s.toml").write_text(SPEC.format(extra=extra))
    return ["sweep", tmp_path / "s.toml", "--out", tmp_path / "o", "--workers", "1", *opts]


def _numba_interrupt() -> SystemError:
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise SystemError("<built-in function compile> returned a result with an "
                              "exception set") from inner
    except SystemError as exc:
        return exc


# ------------------------------------------------------------------ memory over time
class TestMemory:
    @pytest.mark.parametrize("end", ["Reset", "session end"])
    def test_a_dashboard_model_is_released(self, end):
        runner = ModelRunner()
        runner.rebuild({"n_users": 8, "n_dpgc": 2, "hours": 5})
        old = runner.model
        if end == "Reset":
            runner.rebuild({"n_users": 9, "n_dpgc": 2, "hours": 5})
            assert len(vars(runner.model)) > 0
        runner.close()
        assert vars(old) == {}

    def test_a_sweep_run_releases_its_model(self, monkeypatch):
        built = []
        run = DIPIModel.run
        monkeypatch.setattr(DIPIModel, "run", lambda self: built.append(self) or run(self))
        task = engine.RunTask(run_id=0, point_id=0, replication=0, seed=1,
                              params={"n_users": 8, "n_dpgc": 2, "hours": 3})
        engine.run_one(task)
        assert len(built) == 1 and vars(built[0]) == {}


# ------------------------------------------------------------------ the dashboard
class TestDashboard:
    @pytest.mark.parametrize("extra", ['ledger = "/tmp/x.sqlite"', 'grid = "/etc/passwd"',
                                       'grid = "../../secret.graphml"',
                                       'profiles = "/etc/passwd"'])
    def test_the_page_sets_no_path(self, extra):
        values = ctl.scenario_from_controls(ctl.default_values(), extra=extra)
        with pytest.raises(ConfigError, match="sets no file"):
            check_page_values(values)
        plain = ctl.scenario_from_controls(ctl.default_values())
        check_page_values({**plain, "grid": "/tmp/up/feeder.graphml"}, "/tmp/up/feeder.graphml")

    def test_deep_nesting_is_one_line(self):
        with pytest.raises(ConfigError, match="nested"):
            ctl.scenario_from_controls(ctl.default_values(),
                                       extra="hours = " + "[" * 3000 + "]" * 3000)

    @pytest.mark.parametrize("size,claimed", [(MAX_UPLOAD_BYTES + 1, None), (0, 150 * 2**20)])
    def test_an_upload_over_the_cap_keeps_nothing(self, size, claimed):
        uploads = Uploads()
        with pytest.raises(ConfigError, match="16 MiB"):
            uploads.save("big.graphml", io.BytesIO(b"x" * size), size=claimed)
        assert not uploads.folders

    @pytest.mark.parametrize("end", ["refused", "replaced", "session end"])
    def test_an_upload_is_deleted(self, end):
        uploads = Uploads()
        path = uploads.save("../../etc/feeder.graphml", io.BytesIO(b"<graphml/>"))
        assert path.name == "feeder.graphml" and path.exists()
        if end == "session end":
            uploads.close()
        else:  # a refused file keeps the one before; an accepted one replaces it
            other = uploads.save("next.graphml", io.BytesIO(b"<graphml/>"))
            uploads.keep_only(other if end == "replaced" else None)
        assert not path.exists() and not path.parent.exists()

    @staticmethod
    def _ws_scope(origin: str | None, host: str) -> dict:
        headers = [(b"host", host.encode())]
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        return {"type": "websocket", "path": "/jupyter/api/kernels/k/channels",
                "headers": headers}

    @pytest.mark.parametrize("origin,host,accepted", [
        ("http://127.0.0.1:8765", "127.0.0.1:8765", True),
        ("http://localhost:8765", "localhost:8765", True),
        ("http://evil.example", "127.0.0.1:8765", False),
        ("null", "127.0.0.1:8765", False),
        (None, "127.0.0.1:8765", False),
        ("http://127.0.0.1:9999", "127.0.0.1:8765", False),
        ("http://evil.example:8765", "evil.example:8765", False),  # DNS rebinding
    ])
    def test_only_same_origin_websockets_are_accepted(self, origin, host, accepted):
        reached, sent = [], []

        async def app(scope, receive, send):
            reached.append(scope)

        async def send(message):
            sent.append(message)

        middleware = SameOriginMiddleware(app, host="127.0.0.1")
        asyncio.run(middleware(self._ws_scope(origin, host), None, send))
        assert bool(reached) is accepted
        assert (sent == [{"type": "websocket.close", "code": 1008}]) is not accepted


# ------------------------------------------------------------------ verify-ledger
class TestVerifyLedger:
    def test_a_ledger_being_written_verifies_intact(self, tmp_path, capsys):
        ledger = tmp_path / "live.sqlite"
        proc = subprocess.Popen([sys.executable, "-m", "dipi_abm.cli", "run", "--quiet",
                                 "--hours", "100000", "--set", "n_users=20", "--ledger",
                                 str(ledger), "--out", str(tmp_path / "o")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            verdicts: list[str] = []
            deadline = time.monotonic() + 300
            while len(verdicts) < 5 and time.monotonic() < deadline:  # while it is written
                # From the moment the file exists (it appears with its genesis blocks).
                if ledger.exists():
                    rc = cli.main(["verify-ledger", str(ledger)])
                    out = capsys.readouterr().out
                    assert rc == 0 and "intact" in out and "ALTERED" not in out, out
                    verdicts.append(out.splitlines()[0])
                time.sleep(0.02)
            assert len(verdicts) == 5 and proc.poll() is None
        finally:
            proc.kill()
            proc.wait()
        rc = cli.main(["verify-ledger", str(ledger)])  # what a killed run leaves: a prefix
        assert rc == 0 and "intact" in capsys.readouterr().out


# ------------------------------------------------------------------ estimates
class TestEstimates:
    @pytest.mark.parametrize("buses,limit_gb,physical_gb", [(5000, 1.5, None),
                                                             (19873, None, 23.6)])
    def test_a_grid_file_over_the_memory_limit_is_refused(self, buses, limit_gb, physical_gb,
                                                          tmp_path, capsys, monkeypatch):
        if physical_gb is not None:  # the default limit of the machine
            monkeypatch.setattr(grid_mod, "physical_memory_bytes",
                                lambda: int(physical_gb * 2**30))
        grid = _grid_file(tmp_path / "feeder.csv", buses - 1)
        limit = [] if limit_gb is None else ["--set", f"memory_limit_gb={limit_gb}"]
        rc, err = cli_run(["run", *TINY, "--grid", grid, *limit, "--out", tmp_path / "o"],
                          capsys)
        one_line(err, 2, rc, f"{buses} buses", "GiB")
        assert not (tmp_path / "o").exists()

    def test_a_process_memory_limit_is_the_effective_limit(self, tmp_path):
        """``prlimit --as``: refused before the run, naming the limit (not a MemoryError)."""
        limit = 1200 * 2**20

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        proc = subprocess.run([sys.executable, "-m", "dipi_abm.cli", "run", "--set",
                               "n_users=200000", "--set", "hours=2000", "--out",
                               str(tmp_path / "o")], preexec_fn=cap, stderr=subprocess.PIPE,
                              text=True, timeout=300)
        one_line(proc.stderr, 2, proc.returncode, "address-space limit")
        assert not (tmp_path / "o").exists()

    @pytest.mark.parametrize("output,argv", [
        ("agents.parquet", ["--set", "n_users=20000", "--hours", "500"]),
        ("ledger", ["--set", "n_users=2000", "--hours", "500", "--set", "ledger_detail=full",
                    "--ledger", "L.sqlite"]),
    ])
    def test_the_disk_estimate_refuses_before_the_run(self, output, argv, tmp_path, capsys,
                                                      monkeypatch):
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=70 * 2**20))
        monkeypatch.chdir(tmp_path)
        rc, err = cli_run(["run", *argv, "--out", tmp_path / "o"], capsys)
        one_line(err, 2, rc, output, "free")
        assert not (tmp_path / "o").exists() and not (tmp_path / "L.sqlite").exists()


# ------------------------------------------------------------------ resume
class TestResume:
    @pytest.mark.parametrize("change", ["grid file contents", "package version"])
    def test_resume_refuses_a_changed_input_or_version(self, change, tmp_path, capsys):
        grid = _grid_file(tmp_path / "feeder.csv", 6)
        argv = _sweep(tmp_path, f'grid = "{grid}"\n[factors]\ncommitment_ratio = [0.9]\n',
                      "--quiet")
        assert cli_run(argv, capsys)[0] == 0
        if change == "grid file contents":
            _grid_file(grid, 7)
        else:
            meta = json.loads((tmp_path / "o" / "sweep.json").read_text())
            meta["package_version"] = "0.0.1"
            (tmp_path / "o" / "sweep.json").write_text(json.dumps(meta))
        rc, err = cli_run(argv, capsys)
        one_line(err, 2, rc, "mix")

    def test_a_damaged_run_file_is_redone(self, tmp_path, capsys):
        argv = _sweep(tmp_path, "[factors]\ncommitment_ratio = [0.9, 1.0]\n", "--quiet")
        assert cli_run(argv, capsys)[0] == 0
        sorted((tmp_path / "o" / "runs").glob("*.parquet"))[0].write_bytes(b"cut short")
        assert cli_run(argv, capsys)[0] == 0
        assert len(pd.read_parquet(tmp_path / "o" / "runs.parquet")) == 2


# ------------------------------------------------------------------ tracebacks -> one line
RUN_FAULTS = {
    "disk full writing results": (OSError(errno.ENOSPC, "No space left on device",
                                          "agents.parquet"), 1, "No space left"),
    "disk full in the ledger": (sqlite3.OperationalError("database or disk is full"), 1,
                                "full"),
    "out of memory": (MemoryError(), 1, "out of memory"),
    "Ctrl-C": (KeyboardInterrupt(), 130, "interrupted"),
    "Ctrl-C during numba compilation": (_numba_interrupt(), 130, "interrupted"),
    "I/O error": (OSError(errno.EIO, "Input/output error", "model.parquet"), 1, "Input/output"),
}


class TestOneLine:
    @pytest.mark.parametrize("case", list(RUN_FAULTS))
    @pytest.mark.parametrize("command", ["run", "sweep"])
    def test_faults_in_a_run(self, case, command, tmp_path, capsys, monkeypatch):
        exc, status, needle = RUN_FAULTS[case]

        def boom(self, *a, **k):
            raise exc
        monkeypatch.setattr(DIPIModel, "run", boom)
        argv = (["run", *TINY, "--out", tmp_path / "o"] if command == "run" else
                _sweep(tmp_path, "[factors]\ncommitment_ratio = [0.9, 1.0]\n", "--quiet"))
        rc, err = cli_run(argv, capsys)
        one_line(err, status, rc, needle)
        if command == "run":
            no_result(tmp_path / "o")
        else:  # a failed sweep keeps what finished (nothing here) and no table
            assert not (tmp_path / "o" / "runs.parquet").exists()

    @pytest.mark.parametrize("option", ["--out", "--ledger", "--keys", "--config", "--grid"])
    @pytest.mark.parametrize("bad", ["a name of 300 characters", "a symlink loop"])
    def test_bad_paths(self, option, bad, tmp_path, capsys):
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        path = tmp_path / LONG if bad.startswith("a name") else tmp_path / "loop" / "x"
        argv = ["run", *TINY, option, path, "--out", tmp_path / "o"]
        rc, err = cli_run(argv if option != "--out" else argv[:-2], capsys)
        one_line(err, 2, rc)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]  # nothing was made

    @pytest.mark.parametrize("command", ["sweep", "report", "verify-ledger"])
    def test_bad_paths_of_other_commands(self, command, tmp_path, capsys):
        argv = {"sweep": _sweep(tmp_path, "")[:2] + ["--out", tmp_path / LONG],
                "report": ["report", tmp_path / LONG],
                "verify-ledger": ["verify-ledger", tmp_path / LONG]}[command]
        rc, err = cli_run(argv, capsys)
        one_line(err, 2, rc, "too long")

    @pytest.mark.parametrize("where", ["config", "set", "sweep"])
    def test_deep_nesting(self, where, tmp_path, capsys):
        deep = "[" * 3000 + "]" * 3000
        if where == "config":
            (tmp_path / "c.toml").write_text(f"hours = {deep}\n")
            argv = ["run", "--config", tmp_path / "c.toml", "--out", tmp_path / "o"]
        elif where == "set":
            argv = ["run", "--set", f"hours={deep}", "--out", tmp_path / "o"]
        else:
            argv = _sweep(tmp_path, f"[factors]\nhours = {deep}\n")
        rc, err = cli_run(argv, capsys)
        one_line(err, 2, rc, "nested")
        assert not (tmp_path / "o").exists()

    def test_report_on_a_foreign_folder(self, tmp_path, capsys):
        (tmp_path / "runs.parquet").write_bytes(b"PAR1 not really")
        (tmp_path / "sweep.json").write_text('{"made by": "another tool"}')
        rc, err = cli_run(["report", tmp_path], capsys)
        one_line(err, 2, rc, str(tmp_path))

    @pytest.mark.parametrize("where", ["/proc", "/sys"])
    def test_keys_in_a_place_that_cannot_be_written(self, where, tmp_path, capsys):
        rc, err = cli_run(["run", *TINY, "--keys", f"{where}/k.pem", "--out", tmp_path / "o"],
                          capsys)
        one_line(err, 2, rc, "--keys")
        assert not (tmp_path / "o").exists()  # refused before the run, not after it

    def test_stdout_on_a_full_device(self):
        if not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full")
        with open("/dev/full", "w") as full:
            proc = subprocess.run([sys.executable, "-m", "dipi_abm.cli", "keys"], stdout=full,
                                  stderr=subprocess.PIPE, text=True, timeout=300)
        one_line(proc.stderr, 1, proc.returncode, "standard output")

    def test_ctrl_c_in_a_real_run_exits_130(self, tmp_path):
        out = tmp_path / "out"
        # The run starts with SIGINT at its default, as from a terminal, even when pytest
        # itself runs in the background (where a shell starts it with SIGINT ignored, and
        # an ignored signal stays ignored across exec).
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = subprocess.Popen([sys.executable, "-m", "dipi_abm.cli", "run", "--quiet",
                                     "--hours", "100000", "--set", "n_users=10", "--out",
                                     str(out)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob(".out*")) and time.monotonic() < deadline:
            time.sleep(0.1)  # the run has started writing (its temporary folder exists)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
        one_line(err, 130, proc.returncode, "interrupted")
        no_result(out)


# ------------------------------------------------------------------ refused first, nothing left
class TestRefusedFirst:
    @pytest.mark.parametrize("out", ["a file", "inside a file", "a symlink loop", LONG])
    def test_a_bad_out_leaves_no_ledger_or_keys(self, out, tmp_path, capsys):
        (tmp_path / "afile").write_text("x")
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        target = {"a file": "afile", "inside a file": "afile/o",
                  "a symlink loop": "loop/o"}.get(out, out)
        argv = ["run", *TINY, "--ledger", tmp_path / "L.sqlite", "--keys", tmp_path / "k.pem"]
        rc, err = cli_run([*argv, "--out", tmp_path / target], capsys)
        one_line(err, 2, rc)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "loop"]
        assert cli_run([*argv, "--out", tmp_path / "o"], capsys)[0] == 0  # the rerun works

    @pytest.mark.parametrize("case", ["grid level unreadable", "max_parties_per_bus",
                                      "a level out of range", "a level that combines badly",
                                      "a level over the memory limit"])
    def test_a_sweep_refuses_before_its_first_run(self, case, tmp_path, capsys):
        bad = tmp_path / "bad.csv"
        bad.write_text("1 2 oops\n")
        extra = {
            "grid level unreadable": f'[factors]\ngrid = ["ieee33", "{bad}"]\n',
            "max_parties_per_bus": "max_parties_per_bus = 1\n[factors]\ngrid_buses = [40, 5]\n"
                                   'grid = ["synthetic"]\n',
            "a level out of range": "[factors]\ncommitment_ratio = [0.9, 5.0]\n",
            "a level that combines badly": 'breach_policy = "credit_gate"\n[factors]\n'
                                           'matching = ["price_time", "centralized"]\n',
            "a level over the memory limit": 'grid = "synthetic"\nmemory_limit_gb = 0.5\n'
                                             "[factors]\ngrid_buses = [40, 20000]\n",
        }[case]
        rc, err = cli_run(_sweep(tmp_path, extra), capsys)
        one_line(err, 2, rc)
        assert not (tmp_path / "o").exists()

    def test_an_unreachable_scheduler_fails_before_the_folder(self, tmp_path, capsys):
        rc, err = cli_run(_sweep(tmp_path, "", "--scheduler", "tcp://127.0.0.1:9"), capsys)
        one_line(err, 2, rc, "--scheduler", "cannot connect")
        assert not (tmp_path / "o").exists()

    def test_an_existing_ledger_is_refused_before_the_run(self, tmp_path, capsys):
        (tmp_path / "L.sqlite").write_bytes(b"not a ledger")
        rc, err = cli_run(["run", *TINY, "--ledger", tmp_path / "L.sqlite", "--out",
                           tmp_path / "o"], capsys)
        one_line(err, 2, rc, "L.sqlite")
        assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ silently accepted
def _other(p: cfg.Param):
    """A valid value of ``p`` other than its default."""
    if p.kind is bool:
        return not p.default
    if p.kind is str:
        return next(c for c in p.choice_values() if c != p.default)
    d = p.default
    for v in (d + 1, d - 1, d / 2, (p.low + min(p.high, p.low + 2)) / 2):
        try:
            if p.check(v) != d:
                return p.check(v)
        except ConfigError:
            pass
    raise AssertionError(p.name)


CONDITIONAL = (  # (settings, the key that switches them, a value off, a value on)
    (("tou_peak_yuan_per_kwh", "tou_valley_yuan_per_kwh"), "tariff", "flat", "tou"),
    (("grid_buses",), "grid", "ieee33", "synthetic"),
    (("wheeling_rate_yuan_per_kwh_ohm",), "wheeling", "flat", "distance"),
    (("poca_difficulty_bits",), "poca_mode", "sampled", "hashed"),
    (("storage_power_ratio", "storage_hours", "storage_efficiency"), "storage_share", 0, 0.5),
    (("miner_hash_power",), "n_miners", 0, 3),
    (("faulty_collude",), "faulty_share", 0, 0.2),
    (("budget_ratio",), "budget_period_h", 0, 24),
)
#: Every conditional switch on (the rules' switches at their defaults).
ALL_ON = {p.name: p.default for p in cfg.all_params()} | {c[1]: c[3] for c in CONDITIONAL}


def _switches() -> list[tuple[str, str, str, str]]:
    """(setting, key, a value of the key that switches it off, one that switches it on)."""
    cases = [(k, sel, off, on) for keys, sel, off, on in CONDITIONAL for k in keys]
    for sel, registry in cfg.RULE_CHOICES.items():
        for key in dict.fromkeys(k for e in registry.values() for k in sorted(cfg._reads(e))):
            on = [n for n, e in registry.items() if key in cfg._reads(e)]
            cases.append((key, sel, next(n for n in registry if n not in on), on[0]))
    return cases


class TestSilentlyAccepted:
    @pytest.mark.parametrize("argv,needles", [
        (["--set", "hours=5\nseed=3"], ["line break"]),
        (["--set", "matching=centralized", "--set", "breach_policy=credit_gate"],
         ["credit_gate", "matching = centralized"]),
        (["--ledger", "L.sqlite", "--set", "ledger_detail=off"], ["ledger", "ledger_detail"]),
    ])
    def test_a_combination_that_cannot_work_is_refused(self, argv, needles, tmp_path, capsys,
                                                      monkeypatch):
        monkeypatch.chdir(tmp_path)
        rc, err = cli_run(["run", *TINY, *argv, "--out", tmp_path / "o"], capsys)
        one_line(err, 2, rc, *needles)
        assert sorted(p.name for p in tmp_path.iterdir()) == []

    @pytest.mark.parametrize("key,switch,off,on", _switches(), ids=lambda x: str(x))
    def test_a_setting_without_effect_is_warned_naming_both_keys(self, key, switch, off, on):
        def said(*scenarios: dict) -> list[str]:  # what is said about ``key``
            base = {**ALL_ON, key: cfg.param(key).default}
            return [x for x in cfg.inert_settings([{**base, **v} for v in scenarios])
                    if x.startswith(f"{key} = ")]

        value = _other(cfg.param(key))
        assert len(said({switch: off, key: value})) == 1
        assert f"{switch} = " in said({switch: off, key: value})[0]
        assert said({switch: on, key: value}) == said({switch: off}) == []
        # A sweep: said only if no point lets it act.
        assert said({switch: off, key: value}, {switch: on, key: value}) == []

    @pytest.mark.parametrize("command", ["run", "sweep"])
    def test_the_warning_reaches_the_command_line(self, command, tmp_path, capsys):
        argv = (["run", *TINY, "--set", "egreedy_epsilon=0.3", "--out", tmp_path / "o"]
                if command == "run" else
                _sweep(tmp_path, 'learning = "roth_erev"\n[factors]\n'
                       "egreedy_epsilon = [0.2, 0.3]\n", "--quiet"))
        rc, err = cli_run(argv, capsys)
        assert rc == 0
        one_line(err, 0, rc, "warning", "egreedy_epsilon", "learning")

    def test_an_ansi_escape_in_a_table_name_is_shown_escaped(self, tmp_path, capsys):
        (tmp_path / "c.toml").write_text('["\\u001b[31mred"]\nhours = 3\n')
        rc, err = cli_run(["run", "--config", tmp_path / "c.toml", "--out", tmp_path / "o"],
                          capsys)
        one_line(err, 2, rc, "\\x1b")

    @pytest.mark.parametrize("probe", ["builtins:print", "os:system"])
    def test_a_probe_outside_the_project_is_refused(self, probe, tmp_path, capsys):
        argv = _sweep(tmp_path, "[factors]\ncommitment_ratio = [0.9, 1.0]\n")
        spec = (tmp_path / "s.toml").read_text()
        (tmp_path / "s.toml").write_text(spec.replace("seed = 3\n",
                                                      f'seed = 3\nprobe = "{probe}"\n'))
        rc, err = cli_run(argv, capsys)
        one_line(err, 2, rc, probe)
        assert not (tmp_path / "o").exists()
