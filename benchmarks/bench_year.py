"""A year of the market at 1,000 to 100,000 parties: wall time, agent-hours per second
and peak memory, as a user runs it and for the simulation alone.

Every case runs in a fresh process of its own, so its peak resident memory
(the kernel's ``ru_maxrss`` for that process) and its wall time (start-up and
imports included) are its own. Kinds of case:

- ``cli``: ``dipi-abm run`` with its default outputs (per-party records every
  hour streamed to agents.parquet, model.parquet, the plots, summary.json, the
  in-memory ``digest`` ledger), timed from the outside;
- ``sim``: the simulation alone, ``DIPIModel(...).run()`` with no per-party
  records (``agent_report_every = hours``) and no files; agent-hours per
  second count the run, not the set-up;
- ``ref``: the per-agent Mesa implementation of the hour in
  ``reference_per_agent.py``, on the same parties and hours as the ``sim``
  row before it (which runs without a ledger, as the reference has none), so
  the ratio compares equal work.

The load average before each case is printed with it: the machine may be
shared, and other work only ever slows a case down. On a busy machine the
CPU seconds (user + system of the case's processes) say more than the wall
time: they are what the case costs, whoever else is running.

    python benchmarks/bench_year.py              # the README table (about 30 minutes)
    python benchmarks/bench_year.py --quick      # a few minutes: no year at 100k
    python benchmarks/bench_year.py --case cli:10000:8760 --case sim:10000:8760:matching=cma
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Case:
    kind: str  # cli | sim | ref
    parties: int
    hours: int
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Case:
        kind, parties, hours, *rest = text.split(":")
        params = dict(kv.split("=", 1) for kv in rest)
        return cls(kind, int(parties), int(hours), params)

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind} {extra}".strip()


FULL = [
    "cli:10000:876", "cli:10000:8760", "cli:10000:8760:matching=cma",
    "sim:10000:8760", "sim:10000:8760:ledger_detail=off",
    "sim:10000:96:ledger_detail=off", "ref:10000:96",
    "cli:1000:876", "cli:1000:8760",
    "sim:10000:876", "sim:10000:876:matching=cma",
    "sim:10000:876:ledger_detail=off", "sim:10000:168:ledger_detail=full",
    "sim:100000:168", "cli:100000:876", "cli:100000:8760:agent_report_every=24",
]
QUICK = [
    "cli:1000:876", "cli:10000:876", "sim:10000:876", "sim:10000:876:matching=cma",
    "sim:10000:876:ledger_detail=off", "sim:10000:96:ledger_detail=off", "ref:10000:96",
]


def _split(parties: int) -> tuple[int, int]:
    n_dpgc = parties // 10
    return n_dpgc, parties - n_dpgc


def child_sim(case: Case) -> dict:
    """In the child: build and run the model; report the run's own time."""
    from dipi_abm import DIPIModel

    n_dpgc, n_users = _split(case.parties)
    params = {"agent_report_every": case.hours, **_typed(case.params)}
    # Set-up, not timed as the run: a small model with the same rules runs two hours
    # first, so the compiled kernels are loaded from numba's disk cache (about 0.4 s
    # per process) before the clock starts, as the imports are.
    t0 = time.perf_counter()
    small = {**{k: v for k, v in params.items() if k != "ledger"}, "agent_report_every": 2}
    DIPIModel(seed=1, n_dpgc=2, n_users=8, hours=2, **small).run()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = DIPIModel(seed=1, n_dpgc=n_dpgc, n_users=n_users, hours=case.hours, **params)
    build = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    model.run()
    return {"warm_s": warm, "build_s": build, "run_s": time.perf_counter() - t0,
            "run_cpu_s": time.process_time() - c0}


def child_ref(case: Case) -> dict:
    sys.path.insert(0, str(HERE))
    from reference_per_agent import ReferenceModel

    model = ReferenceModel(case.parties, seed=1)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(case.hours):
        model.step()
    return {"run_s": time.perf_counter() - t0, "run_cpu_s": time.process_time() - c0}


def _typed(params: dict[str, str]) -> dict:
    import tomllib

    return {k: tomllib.loads(f"v = {v}")["v"] if not v.isidentifier() else v
            for k, v in params.items()}


def run(case: Case, tmp: Path) -> dict:
    """Measure one case in a fresh process; peak RSS from that process's rusage."""
    load = os.getloadavg()[0]
    if case.kind == "cli":
        n_dpgc, n_users = _split(case.parties)
        out = tmp / f"run-{case.parties}-{case.hours}"
        cmd = [sys.executable, "-m", "dipi_abm.cli", "run", "--quiet", "--seed", "1",
               "--hours", str(case.hours), "--out", str(out),
               "--set", f"n_dpgc={n_dpgc}", "--set", f"n_users={n_users}"]
        for k, v in case.params.items():
            cmd += ["--set", f"{k}={v}"]
    else:
        cmd = [sys.executable, __file__, "--child",
               f"{case.kind}:{case.parties}:{case.hours}"
               + "".join(f":{k}={v}" for k, v in case.params.items())]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout = proc.stdout.read().decode()  # type: ignore[union-attr]
    stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-2000:]}")
    result = {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
              "peak_rss_mb": usage.ru_maxrss / 1024, "load": load}
    if case.kind == "cli":
        result["run_s"] = wall
        size = sum(f.stat().st_size for f in out.iterdir())
        result["output_mb"] = size / 2**20
        for f in out.iterdir():
            f.unlink()
        out.rmdir()
    else:
        result.update(json.loads(stdout.strip().splitlines()[-1]))
    result["agent_hours_per_s"] = case.parties * case.hours / result["run_s"]
    # per CPU second of the run (the figure that holds on a shared machine)
    result["agent_hours_per_cpu_s"] = case.parties * case.hours / result.get(
        "run_cpu_s", result["cpu_s"])
    return result


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python "
            f"{platform.python_version()}, {platform.system()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the long cases")
    ap.add_argument("--case", action="append", metavar="KIND:PARTIES:HOURS[:KEY=VALUE...]",
                    help="run only these cases (repeatable)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON lines")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        case = Case.parse(args.child)
        print(json.dumps(child_sim(case) if case.kind == "sim" else child_ref(case)))
        return
    cases = [Case.parse(c) for c in (args.case or (QUICK if args.quick else FULL))]
    print(f"machine: {machine()}")
    print("| case | parties | hours | wall s | CPU s | agent-hours/s | agent-hours/CPU-s "
          "| peak RSS MB | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    last_sim = None
    with tempfile.TemporaryDirectory(prefix="dipi-bench-year-") as tmp:
        for case in cases:
            r = run(case, Path(tmp))
            ratio = ""
            if case.kind == "sim":
                last_sim = (case, r)
            elif case.kind == "ref" and last_sim and (
                    (last_sim[0].parties, last_sim[0].hours) == (case.parties, case.hours)):
                times = last_sim[1]["agent_hours_per_cpu_s"] / r["agent_hours_per_cpu_s"]
                ratio = f" (sim: {times:.0f}x)"
            print(f"| {case.label} | {case.parties:,} | {case.hours:,} | {r['wall_s']:.1f} | "
                  f"{r['cpu_s']:.1f} | {r['agent_hours_per_s']:.3g} | "
                  f"{r['agent_hours_per_cpu_s']:.3g}{ratio} | {r['peak_rss_mb']:,.0f} | "
                  f"{r['load']:.1f} |", flush=True)
            if args.json:
                with open(args.json, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"case": case.__dict__, **r}) + "\n")


if __name__ == "__main__":
    main()
