"""docs/tutorial.md runs as written: its spec, its commands, the report it shows.

By default the same commands run on a smaller spec (fewer parties, replications and
hours; :data:`SMALLER`), and the report must have the tutorial's tables, rows and
columns. With ``DIPI_TUTORIAL_FULL=1`` the spec runs as written and the report must be
the one the tutorial prints, digit for digit.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
FULL = os.environ.get("DIPI_TUTORIAL_FULL") == "1"
SMALLER = {"replications = 10": "replications = 3", "hours = 336": "hours = 170",
           "n_dpgc = 10": "n_dpgc = 3", "n_users = 40": "n_users = 12"}


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_the_tutorial_runs_as_written(tmp_path):
    text = TUTORIAL.read_text(encoding="utf-8")
    [spec] = _blocks(text, "toml")
    commands = [ln for b in _blocks(text, "bash") for ln in b.splitlines() if ln.strip()]
    [shown] = _blocks(text, "text")
    assert [c.split()[:2] for c in commands] == [["dipi-abm", "sweep"], ["dipi-abm", "report"]]
    if not FULL:
        for full, small in SMALLER.items():
            assert full in spec
            spec = spec.replace(full, small)
    (tmp_path / "incentive.toml").write_text(spec, encoding="utf-8")
    bin_dir = tmp_path / "bin"  # `dipi-abm` of this checkout, whatever is installed
    bin_dir.mkdir()
    shim = bin_dir / "dipi-abm"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dipi_abm.cli "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=3600)
        assert done.returncode == 0, done.stderr
        assert "warning" not in done.stderr  # the tutorial's parties learn
    report = done.stdout
    if FULL:
        assert report.strip() == shown.strip()
    else:  # the same tables, rows and columns, every cell with its interval
        for line in shown.splitlines():
            label = re.split(r"\s{2,}", line.strip())[0]
            if line.startswith("  ") and "±" in line:
                cells = re.escape(label) + r"\s+(paired|\d+)" + r"\s+[-0-9.,e+]+ ± [-0-9.,e+]+" * (
                    line.count("±"))
                assert re.search(cells, report), line
            elif not re.search(r"\d", line):  # headings and column names, any widths
                assert line.split() in [r.split() for r in report.splitlines()], line
    runs = pd.read_parquet(tmp_path / "incentive" / "runs.parquet")
    assert runs[["late_breach_rate", "cost_per_kwh"]].notna().all().all()
    assert (tmp_path / "incentive" / "report.html").is_file()
