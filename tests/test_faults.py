"""Faults as a tester meets them (issue 23), by class: each ends in one line and its
documented exit status (docs/robustness.md), leaves nothing it did not finish, and is
refused before the first run where it can be checked.

Most cases call ``dipi_abm.cli.main`` in this process (the fault is injected where a
real disk, memory or Ctrl-C would raise it); Ctrl-C, stdout on a full device and a
process memory limit run in a real process.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dipi_abm import cli
from dipi_abm.dashboard import controls as ctl
from dipi_abm.dashboard.security import (
    MAX_UPLOAD_BYTES,
    SameOriginMiddleware,
    Uploads,
    check_page_values,
)
from dipi_abm.errors import ConfigError
from dipi_abm.model import DIPIModel

TINY = ["--hours", "3", "--seed", "1", "--set", "n_users=8", "--set", "n_dpgc=2", "--no-plots",
        "--quiet"]
SPEC = """[sweep]\ndesign = "factorial"\nreplications = 1\nseed = 3\n
[base]\nn_dpgc = 2\nn_users = 8\nhours = 3\n{extra}"""


def cli_run(argv: list[str], capsys) -> tuple[int, str]:
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


# ------------------------------------------------------------------ tracebacks -> one line
def _raise_in_run(monkeypatch, exc: BaseException) -> None:
    def boom(self, *a, **k):
        raise exc
    monkeypatch.setattr(DIPIModel, "run", boom)


def _numba_interrupt() -> SystemError:
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise SystemError("<built-in function compile> returned a result with an "
                              "exception set") from inner
    except SystemError as exc:
        return exc


RUN_FAULTS = {
    "disk full writing results": (OSError(errno.ENOSPC, "No space left on device",
                                          "agents.parquet"), 1, "No space left"),
    "disk full in the ledger": (sqlite3.OperationalError("database or disk is full"), 1,
                                "ledger"),
    "out of memory": (MemoryError(), 1, "out of memory"),
    "Ctrl-C": (KeyboardInterrupt(), 130, "interrupted"),
    "Ctrl-C during numba compilation": (_numba_interrupt(), 130, "interrupted"),
    "I/O error": (OSError(errno.EIO, "Input/output error", "model.parquet"), 1, "Input/output"),
}


@pytest.mark.parametrize("case", list(RUN_FAULTS))
def test_run_faults_end_in_one_line(case, tmp_path, capsys, monkeypatch):
    exc, status, needle = RUN_FAULTS[case]
    _raise_in_run(monkeypatch, exc)
    rc, err = cli_run(["run", *TINY, "--out", tmp_path / "out"], capsys)
    one_line(err, status, rc, needle)
    no_result(tmp_path / "out")


def test_bad_out_paths_end_in_one_line(tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for out, needle in ((tmp_path / ("x" * 300) / "y", "too long"), (loop / "x", "loop")):
        rc, err = cli_run(["run", *TINY, "--out", out], capsys)
        one_line(err, 2, rc, needle)


@pytest.mark.parametrize("where", ["config", "set", "sweep"])
def test_deep_nesting_ends_in_one_line(where, tmp_path, capsys):
    deep = "[" * 3000 + "]" * 3000
    if where == "config":
        (tmp_path / "c.toml").write_text(f"hours = {deep}\n")
        argv = ["run", "--config", tmp_path / "c.toml", "--out", tmp_path / "o"]
    elif where == "set":
        argv = ["run", "--set", f"hours={deep}", "--out", tmp_path / "o"]
    else:
        (tmp_path / "s.toml").write_text(SPEC.format(extra=f"[factors]\nhours = {deep}\n"))
        argv = ["sweep", tmp_path / "s.toml", "--out", tmp_path / "o"]
    rc, err = cli_run(argv, capsys)
    one_line(err, 2, rc, "nested")
    assert not (tmp_path / "o").exists()


def test_report_on_a_foreign_folder_ends_in_one_line(tmp_path, capsys):
    (tmp_path / "runs.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "sweep.json").write_text('{"made by": "another tool"}')
    rc, err = cli_run(["report", tmp_path], capsys)
    one_line(err, 2, rc, str(tmp_path))


def test_stdout_on_a_full_device_ends_in_one_line():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "dipi_abm.cli", "keys"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    one_line(proc.stderr, 1, proc.returncode, "standard output")


def test_ctrl_c_in_a_real_run_exits_130(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "dipi_abm.cli", "run", "--quiet", "--hours",
                             "100000", "--set", "n_users=10", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".out*")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the run has started writing (its temporary folder exists)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    one_line(err, 130, proc.returncode, "interrupted")
    no_result(out)


def test_process_memory_limit_is_the_effective_limit(tmp_path):
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


# ------------------------------------------------------------------ refused, nothing left
def test_disk_estimate_refuses_before_the_run(tmp_path, capsys, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: usage._replace(free=70 * 2**20))
    rc, err = cli_run(["run", "--set", "n_users=20000", "--hours", "500", "--out",
                       tmp_path / "o"], capsys)
    one_line(err, 2, rc, "agents.parquet", "free")
    assert not (tmp_path / "o").exists()


def test_damaged_run_file_is_redone_on_resume(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(extra='[factors]\nnatural_factor = [0.0, 0.1]\n'))
    out = tmp_path / "o"
    assert cli_run(["sweep", spec, "--out", out, "--workers", "1", "--quiet"], capsys)[0] == 0
    rows = sorted((out / "runs").glob("*.parquet"))
    rows[0].write_bytes(b"cut short")
    assert cli_run(["sweep", spec, "--out", out, "--workers", "1", "--quiet"], capsys)[0] == 0
    import pandas as pd
    assert len(pd.read_parquet(out / "runs.parquet")) == 2


def _grid_file(path: Path, n: int) -> Path:
    path.write_text("".join(f"{i} {i + 1} 0.1\n" for i in range(n)))
    return path


@pytest.mark.parametrize("case", ["grid level unreadable", "max_parties_per_bus",
                                  "probe builtins:print", "probe os:system"])
def test_sweep_refuses_before_its_first_run(case, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1 2 oops\n")
    extra = {
        "grid level unreadable": f'[factors]\ngrid = ["ieee33", "{bad}"]\n',
        "max_parties_per_bus": "max_parties_per_bus = 1\n[factors]\ngrid_buses = [40, 5]\n"
                               'grid = ["synthetic"]\n',
        "probe builtins:print": 'probe = "builtins:print"\n[factors]\nn_users = [8, 9]\n',
        "probe os:system": 'probe = "os:system"\n[factors]\nn_users = [8, 9]\n',
    }[case]
    text = SPEC.format(extra=extra)
    if "probe" in case:  # a [sweep] key
        text = text.replace("seed = 3\n", "seed = 3\n" + extra.split("\n")[0] + "\n", 1)
        text = text.replace("\n" + extra.split("\n")[0] + "\n[factors]", "\n[factors]")
    (tmp_path / "s.toml").write_text(text)
    rc, err = cli_run(["sweep", tmp_path / "s.toml", "--out", tmp_path / "o", "--workers",
                       "1"], capsys)
    one_line(err, 2, rc)
    assert not (tmp_path / "o").exists()


def test_unreachable_scheduler_fails_before_the_folder(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SPEC.format(extra=""))
    rc, err = cli_run(["sweep", tmp_path / "s.toml", "--out", tmp_path / "o",
                       "--scheduler", "tcp://127.0.0.1:9"], capsys)
    one_line(err, 2, rc, "--scheduler", "cannot connect")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("change", ["grid file contents", "package version"])
def test_resume_refuses_a_changed_input_or_version(change, tmp_path, capsys):
    grid = _grid_file(tmp_path / "feeder.csv", 6)
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(extra=f'grid = "{grid}"\n[factors]\nnatural_factor = [0.0]\n'))
    out = tmp_path / "o"
    argv = ["sweep", spec, "--out", out, "--workers", "1", "--quiet"]
    assert cli_run(argv, capsys)[0] == 0
    if change == "grid file contents":
        _grid_file(grid, 7)
    else:
        meta = json.loads((out / "sweep.json").read_text())
        meta["package_version"] = "0.0.1"
        (out / "sweep.json").write_text(json.dumps(meta))
    rc, err = cli_run(argv, capsys)
    one_line(err, 2, rc, "mix")


# ------------------------------------------------------------------ silently accepted
@pytest.mark.parametrize("argv,needles", [
    (["--set", "hours=5\nseed=3"], ["line break"]),
    (["--set", "matching=centralized", "--set", "breach_policy=credit_gate"],
     ["credit_gate", "matching = centralized"]),
])
def test_combinations_without_effect_are_refused(argv, needles, tmp_path, capsys):
    rc, err = cli_run(["run", *argv, "--out", tmp_path / "o"], capsys)
    one_line(err, 2, rc, *needles)


def test_ansi_escape_in_a_table_name_is_shown_escaped(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('["\\u001b[31mred"]\nhours = 3\n')
    rc, err = cli_run(["run", "--config", tmp_path / "c.toml", "--out", tmp_path / "o"],
                      capsys)
    one_line(err, 2, rc, "\\x1b")


# ------------------------------------------------------------------ the dashboard
@pytest.mark.parametrize("extra", ['ledger = "/tmp/x.sqlite"', 'grid = "/etc/passwd"',
                                   'grid = "../../secret.graphml"'])
def test_the_page_sets_no_path(extra):
    values = ctl.scenario_from_controls(ctl.default_values(), extra=extra)
    with pytest.raises(ConfigError, match="sets no file"):
        check_page_values(values)
    plain = ctl.scenario_from_controls(ctl.default_values())
    check_page_values({**plain, "grid": "/tmp/up/feeder.graphml"}, "/tmp/up/feeder.graphml")


def test_the_page_shows_deep_nesting_in_one_line():
    with pytest.raises(ConfigError, match="nested"):
        ctl.scenario_from_controls(ctl.default_values(),
                                   extra="hours = " + "[" * 3000 + "]" * 3000)


def test_uploads_are_capped_and_deleted():
    import io

    uploads = Uploads()
    with pytest.raises(ConfigError, match="MiB"):
        uploads.save("big.graphml", io.BytesIO(b"x" * (MAX_UPLOAD_BYTES + 1)))
    with pytest.raises(ConfigError, match="MiB"):
        uploads.save("big.graphml", io.BytesIO(b""), size=10**9)
    assert not uploads.folders
    path = uploads.save("../../etc/feeder.graphml", io.BytesIO(b"<graphml/>"))
    assert path.name == "feeder.graphml" and path.exists()
    uploads.close()
    assert not path.exists() and not path.parent.exists()


def _ws_scope(origin: str | None, host: str = "127.0.0.1:8765") -> dict:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "path": "/jupyter/api/kernels/k/channels", "headers": headers}


@pytest.mark.parametrize("origin,host,accepted", [
    ("http://127.0.0.1:8765", "127.0.0.1:8765", True),
    ("http://localhost:8765", "localhost:8765", True),
    ("http://evil.example", "127.0.0.1:8765", False),
    ("null", "127.0.0.1:8765", False),
    (None, "127.0.0.1:8765", False),
    ("http://127.0.0.1:9999", "127.0.0.1:8765", False),
    ("http://evil.example:8765", "evil.example:8765", False),  # DNS rebinding
])
def test_only_same_origin_websockets_are_accepted(origin, host, accepted):
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(scope)

    async def send(message):
        sent.append(message)

    middleware = SameOriginMiddleware(app, host="127.0.0.1")
    asyncio.run(middleware(_ws_scope(origin, host), None, send))
    assert bool(reached) is accepted
    assert (sent == [{"type": "websocket.close", "code": 1008}]) is not accepted


# ------------------------------------------------------------------ memory
def test_a_replaced_dashboard_model_is_released():
    from dipi_abm.dashboard.runner import ModelRunner

    runner = ModelRunner()
    runner.rebuild({"n_users": 8, "n_dpgc": 2, "hours": 5})
    old = runner.model
    runner.rebuild({"n_users": 9, "n_dpgc": 2, "hours": 5})
    assert vars(old) == {} and len(vars(runner.model)) > 0
    current = runner.model
    runner.close()
    assert vars(current) == {}
