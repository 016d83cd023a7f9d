"""Bad input, everywhere (issue 14): every key, sweep spec and grid file a user may get wrong.

For every scenario key: values of every wrong type, NaN, +-inf, 0, negative and huge.
Each bad value must give, through the command line (a real process), exit status 2,
one line on stderr naming the key or file, no traceback and nothing written; through
Python, a :class:`ConfigError`. The same for sweep specs and grid files (GraphML and
edge lists with every kind of bad edge).

The command-line cases run in a few real processes: one driver process calls
``dipi_abm.cli.main`` for a whole batch (its exit code, stderr and the output folder
are recorded per case), and a sample also goes through the ``dipi-abm`` entry point,
one process each. So a thousand cases cost seconds, not a thousand interpreter starts.
Run with ``-s`` to see the counts (tried / clean / other).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dipi_abm import ConfigError, DIPIModel
from dipi_abm.config import Param, all_params, load_toml, validate
from dipi_abm.physics.grid import build_grid
from dipi_abm.sweep.engine import load_spec, plan_runs

# ----------------------------------------------------------------------------- the oracle
NUMERIC_PROBES = ["nan", "inf", "-inf", "0", "-1", "1e308", "1" + "0" * 40]
TYPE_PROBES = ['"text"', "true", "[1, 2]", "{ a = 1 }", "1979-05-27", "0.5"]
PROBES = NUMERIC_PROBES + TYPE_PROBES


def accepts(p: Param, v: Any) -> bool:
    """What the key table (docs, README) says ``p`` takes, written independently of
    ``Param.check``: the type, then the documented range, inf only where documented."""
    if v is None:
        return p.allow_none
    if p.kind is bool:
        return isinstance(v, bool)
    if p.kind is str:
        if not isinstance(v, str) or "\x00" in v or len(v) > 4096:
            return False
        return p.choices is None or v in p.choice_values()
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    if isinstance(v, float):
        if math.isnan(v) or v == -math.inf:
            return False
        if v == math.inf:
            return p.kind is float and p.allow_inf
        if p.kind is int and not v.is_integer():
            return False
    if p.low is not None and (v < p.low or (p.low_open and v == p.low)):
        return False
    return p.high is None or not (v > p.high or (p.high_open and v == p.high))


def literal(text: str) -> Any:
    return tomllib.loads(f"v = {text}")["v"]


def bad_probes(p: Param) -> list[str]:
    """The probes (TOML literals) that ``p`` must refuse on its own."""
    return [t for t in PROBES if not accepts(p, literal(t))]


def test_every_numeric_key_has_a_finite_range():
    """No key takes 1e308 or a huge integer: every range is one a machine can honour."""
    for p in all_params():
        if p.kind in (int, float) and p.choices is None:
            assert p.high is not None and math.isfinite(p.high), p.name
            assert p.low is not None and math.isfinite(p.low), p.name
            assert "1e308" in bad_probes(p) and "-inf" in bad_probes(p), p.name
            assert ("inf" in bad_probes(p)) != p.allow_inf, p.name


# ----------------------------------------------------------------------------- Python API
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 0.0, -0.0, 1e308, -1e308, 10**40, -(10**40), 2**63, 5e-324]),
    st.integers(),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from([p.name for p in all_params()]), value=values)
def test_every_key_refuses_what_its_table_does_not_allow(key, value):
    p = next(q for q in all_params() if q.name == key)
    if accepts(p, value):
        try:
            validate({key: value})  # a cross-key rule may still refuse it, one line
        except ConfigError as exc:
            assert "\n" not in str(exc)
        return
    with pytest.raises(ConfigError) as info:
        validate({key: value})
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{key} = "), msg
    if key == "grid" and value is None:
        return  # DIPIModel(grid=None) means the default feeder (its documented Python form)
    with pytest.raises(ConfigError):
        DIPIModel(**{"seed": 1, key: value})


# ----------------------------------------------------------------------------- CLI driver
DRIVER = r"""
import contextlib, io, json, sys, traceback
from pathlib import Path
from dipi_abm import cli

results = []
for case in json.load(sys.stdin):
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = cli.main(case["argv"])
    except SystemExit as exc:
        rc = exc.code
    except BaseException:
        rc, err = "exception", io.StringIO(traceback.format_exc())
    target = Path(case["out"])
    siblings = [p.name for p in target.parent.glob(f".{target.name}.*")]
    results.append({"rc": rc, "err": err.getvalue(), "written": target.exists() or siblings})
json.dump(results, sys.stdout)
"""


def drive(cases: list[dict], cwd: Path) -> list[dict]:
    """Run the command-line cases in one real process; return what each did."""
    proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(cases),
                          capture_output=True, text=True, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def verdict(result: dict, needles: list[str]) -> str | None:
    """None if the case was refused cleanly, else what went wrong."""
    err = result["err"]
    lines = err.strip().splitlines()
    if result["rc"] != 2:
        return f"exit {result['rc']}"
    if len(lines) != 1 or "Traceback" in err:
        return f"{len(lines)} lines"
    if result["written"]:
        return f"wrote {result['written']}"
    missing = [n for n in needles if n not in lines[0]]
    return f"message lacks {missing}" if missing else None


def tally(name: str, cases: list[dict], results: list[dict]) -> list[str]:
    bad = []
    for case, result in zip(cases, results, strict=True):
        problem = verdict(result, case["needles"])
        if problem:
            bad.append(f"{case['argv']}: {problem}: {result['err'][-400:]!r}")
    print(f"\n{name}: bad inputs tried {len(cases)} / clean {len(cases) - len(bad)} / "
          f"other {len(bad)}")
    return bad


def run_case(argv: list[str], out: Path, needles: list[str]) -> dict:
    return {"argv": ["run", *argv, "--out", str(out), "--quiet", "--no-plots"],
            "out": str(out), "needles": needles}


def key_cases(tmp: Path) -> list[dict]:
    """Every key x every probe it must refuse, by --set and (first probe) by --config."""
    cases = []
    for p in all_params():
        for i, text in enumerate(bad_probes(p)):
            cases.append(run_case(["--set", f"{p.name}={text}"], tmp / "out", [p.name]))
            if i == 0:  # in a file, overridden on the command line: still reported
                f = tmp / f"{p.name}.toml"
                f.write_text(f"{p.name} = {text}\n")
                extra = ["--hours", "5"] if p.name != "hours" else ["--set", "hours=5"]
                cases.append(run_case(["--config", str(f), *extra], tmp / "out",
                                      [p.name, str(f)]))
    return cases


def issue_cases(tmp: Path) -> list[dict]:
    """The 33 cases issue 14 lists, as a new user typed them."""
    def toml(name: str, text: str) -> str:
        (tmp / name).write_text(textwrap.dedent(text).lstrip())
        return str(tmp / name)

    (tmp / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (tmp / "r1e308.csv").write_text("1 2 0.1\n2 3 1e308\n3 4 0.2\n")
    out = tmp / "out"
    cases = [
        run_case(["--set", "n_users=10000000"], out, ["n_users", "GiB", "limit"]),
        run_case(["--set", "grid=synthetic", "--set", "grid_buses=20000"], out,
                 ["grid_buses", "GiB", "limit"]),
        run_case(["--set", "forecast_lead_h=inf"], out, ["forecast_lead_h"]),
        run_case(["--config", str(tmp / "binary.toml")], out, ["binary.toml", "UTF-8"]),
        run_case(["--grid", str(tmp / "r1e308.csv")], out, ["r1e308.csv", "impedance"]),
        run_case(["--set", "poca_mode=hashed", "--set", "poca_difficulty_bits=32"], out,
                 ["poca_difficulty_bits", "hashes per block", "limit"]),
        run_case(["--hours", "10000000"], out, ["hours", "GiB", "limit"]),
        run_case(["--set", "capacity_solar_kw=inf"], out, ["capacity_solar_kw"]),
        run_case(["--set", "load_residential_kw=1e308"], out, ["load_residential_kw"]),
        run_case(["--config", toml("override.toml", "hours = -3\n"), "--hours", "5"], out,
                 ["override.toml", "line 1", "hours = -3"]),
        run_case(["--config", toml("twice.toml", "n_users = 5\n[population]\nn_users = 9\n")],
                 out, ["twice.toml", "line 3", "n_users", "twice"]),
        run_case(["--config", toml("case.toml", "[population]\nn_users = 5\n[Population]\n"
                                                "n_dpgc = 3\n")], out,
                 ["case.toml", "line 3", "[Population]", "case"]),
        run_case(["--config", toml("nonsense.toml", "[nonsense]\nx = 1\n")], out,
                 ["nonsense.toml", "line 1", "[nonsense]"]),
    ]
    for key, text in [("retail_yuan_per_kwh", "inf"), ("load_noise_sd", "inf"),
                      ("block_reward_yuan", "inf"), ("initial_balance_yuan", "inf"),
                      ("miner_hash_power", "inf"), ("miner_hash_power", "1e300"),
                      ("cma_distance_ref_ohm", "inf")]:
        cases.append(run_case(["--set", f"{key}={text}"], out, [key]))
    spec = tmp / "spec"
    spec.mkdir(exist_ok=True)
    for name, text, needles in [
        ("factorial", "[sweep]\nseed = 1\n[factors]\n"
         "natural_factor = {low = 0.0, high = 0.2, num = 100000}\n"
         "breach_tolerance = {low = 0.0, high = 0.5, num = 100000}\n", ["[factors]", "runs"]),
        ("lhs", '[sweep]\nseed = 1\ndesign = "lhs"\nsamples = 1000000000\n[factors]\n'
         "natural_factor = [0.0, 0.2]\n", ["samples", "runs"]),
        ("reps", "[sweep]\nseed = 1\nreplications = 1000000000\n", ["replications"]),
    ]:
        f = spec / f"{name}.toml"
        f.write_text(text)
        cases.append({"argv": ["sweep", str(f), "--out", str(tmp / "sweep_out"), "--quiet"],
                      "out": str(tmp / "sweep_out"), "needles": [str(f), *needles]})
    return cases


def test_every_bad_key_value_through_the_command_line(tmp_path):
    cases = key_cases(tmp_path) + issue_cases(tmp_path)
    results = drive(cases, tmp_path)
    bad = tally("command line, every key and the issue's cases", cases, results)
    assert not bad, "\n".join(bad[:20])


ENTRY_POINT_SAMPLE = [["--set", "capacity_solar_kw=inf"], ["--set", "n_users=10000000"],
                      ["--set", "poca_mode=hashed", "--set", "poca_difficulty_bits=32"],
                      ["--set", "nosuchkey=1"]]


def test_a_sample_through_the_installed_entry_point(tmp_path):
    """The same in separate `dipi-abm` processes (started together, a handful)."""
    exe = Path(sys.executable).with_name("dipi-abm")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "dipi_abm.cli"]
    procs = []
    for i, argv in enumerate(ENTRY_POINT_SAMPLE):
        out = tmp_path / f"o{i}"
        procs.append((out, subprocess.Popen([*base, "run", *argv, "--out", str(out)],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True, cwd=tmp_path)))
    errors = []
    for out, proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, stderr
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
        assert stderr.startswith("dipi-abm: error: ") and not stdout
        assert not out.exists()
        errors.append(stderr)
    assert "see `dipi-abm keys`" in errors[-1]  # issue 13: not the missing --help-keys


# ----------------------------------------------------------------------------- sweep specs
SWEEP_PROBES = {"design": ["0", '"nope"', "true", "[1]", "nan"],
                "replications": ["0", "-1", "1.5", '"x"', "1000000000", "nan", "inf", "true"],
                "seed": ["-1", "1.5", '"x"', "nan", "inf", "true", "[1]"],
                "samples": ["0", "-1", '"x"', "1.5", "nan", "inf", "1000000000"],
                "hourly": ['"x"', "1", "nan", "[true]"]}
FACTOR_PROBES = [
    "{ low = nan, high = 0.2 }", "{ low = 0.0, high = inf }", "{ low = 0.2, high = 0.1 }",
    "{ low = 0.0, high = 0.2, num = 0 }", "{ low = 0.0, high = 0.2, num = nan }",
    "[]", "[0.1, nan]", "[0.1, 5.0]", '"0.1"', "0.1", "{ values = 3 }", "{ lo = 1 }",
]


def sweep_specs(tmp: Path) -> list[tuple[Path, list[str]]]:
    """Bad spec files: every key's bad values in [base]; bad [sweep] entries and factors."""
    specs = []
    n = 0

    def add(text: str, needles: list[str]) -> None:
        nonlocal n
        n += 1
        f = tmp / f"spec{n}.toml"
        f.write_text(text)
        specs.append((f, needles))

    for p in all_params():
        if p.name == "seed":
            continue
        for i, text in enumerate(bad_probes(p)):
            add(f"[sweep]\nseed = 1\n[base]\n{p.name} = {text}\n", ["[base]", p.name])
            if i < 3:  # as a level of a factor
                add(f"[sweep]\nseed = 1\n[factors]\n{p.name} = [{text}]\n",
                    ["[factors]", p.name])
    for key, probes in SWEEP_PROBES.items():
        for text in probes:
            lhs = 'design = "lhs"\n' if key == "samples" else ""
            seed = "" if key == "seed" else "seed = 1\n"
            factors = "[factors]\nnatural_factor = [0.0, 0.2]\n" if lhs else ""
            add(f"[sweep]\n{seed}{lhs}{key} = {text}\n{factors}", ["[sweep]", key])
    for text in FACTOR_PROBES:
        add(f"[sweep]\nseed = 1\n[factors]\nnatural_factor = {text}\n",
            ["[factors]", "natural_factor"])
    add("sweep = 3\n", ["[sweep]"])
    add("[sweep]\nseed = 1\n[Sweep]\nseed = 2\n", ["[Sweep]"])
    add("[sweep]\nseed = 1\nseed = 2\n", ["line 3"])
    (tmp / "binary_spec.toml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    specs.append((tmp / "binary_spec.toml", ["UTF-8"]))
    return specs


def test_every_bad_sweep_spec_is_a_config_error(tmp_path):
    for path, needles in sweep_specs(tmp_path):
        with pytest.raises(ConfigError) as info:
            plan_runs(load_spec(path))
        msg = str(info.value)
        assert "\n" not in msg and str(path) in msg, msg
        for needle in needles:
            assert needle in msg, (path.read_text(errors="replace"), msg)


def test_every_bad_sweep_spec_through_the_command_line(tmp_path):
    out = tmp_path / "sweep_out"
    cases = [{"argv": ["sweep", str(path), "--out", str(out), "--quiet"], "out": str(out),
              "needles": [str(path), *needles]} for path, needles in sweep_specs(tmp_path)]
    bad = tally("sweep specs", cases, drive(cases, tmp_path))
    assert not bad, "\n".join(bad[:20])


# ----------------------------------------------------------------------------- grid files
GOOD_EDGES = [("1", "2", "0.1"), ("2", "3", "0.2"), ("3", "4", "0.15")]
BAD_R = ["-0.1", "nan", "inf", "-inf", "1e308", "1e-300", "abc", '""', "0x10", "1e7"]


def edge_list(rows: list[tuple[str, ...]], head: str = "") -> str:
    return head + "".join(" ".join(r) + "\n" for r in rows)


def bad_edge_lists() -> dict[str, str]:
    """Every kind of bad edge in an edge list (name -> file text)."""
    files = {f"r={r}": edge_list([*GOOD_EDGES[:2], ("3", "4", r)]) for r in BAD_R}
    files.update({"x=nan": edge_list([("1", "2", "0.1", "0.1"), ("2", "3", "0.2", "nan")]),
                  "x=inf": edge_list([("1", "2", "0.1", "0.1"), ("2", "3", "0.2", "inf")]),
                  "two_fields": edge_list([*GOOD_EDGES, ("4", "5")]),
                  "five_fields": edge_list([*GOOD_EDGES, ("4", "5", "0.1", "0.1", "9")]),
                  "self_loop": edge_list([*GOOD_EDGES, ("4", "4", "0.1")]),
                  "disconnected": edge_list([*GOOD_EDGES, ("7", "8", "0.1")]),
                  "single_bus_pair_zero": edge_list([("1", "2", "0")]).replace("2 0", "1 0"),
                  "empty": "", "comments_only": "# nothing here\n\n",
                  "bad_root": "# root: 99\n" + edge_list(GOOD_EDGES),
                  "header_without_impedance": "from,to,length\n1,2,0.1\n2,3,0.2\n",
                  "header_repeats": "from,to,r_ohm,r_ohm\n1,2,0.1,0.1\n",
                  "header_short_row": "from,to,r_ohm,x_ohm\n1,2,0.1\n",
                  "comma_empty_label": "1,2,0.1\n,3,0.2\n", "nul": "1 2 0.1\n2 3 0.\x002\n"})
    return files


def bad_graphmls() -> dict[str, nx.Graph | str | bytes]:
    def path(r: object) -> nx.Graph:
        g = nx.path_graph(4)
        for u, v in g.edges:
            g.edges[u, v]["r_ohm"] = 0.1
        g.edges[2, 3]["r_ohm"] = r
        return g

    graphs: dict[str, nx.Graph | str | bytes] = {
        f"r={r}": path(r) for r in (-0.1, math.nan, math.inf, 1e308, 1e-300, "abc", True)}
    no_r = path(0.1)
    del no_r.edges[1, 2]["r_ohm"]
    graphs["no_impedance"] = no_r
    loop = path(0.1)
    loop.add_edge(3, 3, r_ohm=0.1)
    graphs["self_loop"] = loop
    apart = path(0.1)
    apart.add_edge(7, 8, r_ohm=0.1)
    graphs["disconnected"] = apart
    rooted = path(0.1)
    rooted.graph["root"] = "nowhere"
    graphs["bad_root"] = rooted
    graphs["corrupt"] = "<graphml><graph><node id='1'/>"
    graphs["binary"] = bytes(range(256)) * 8
    return graphs


def grid_files(tmp: Path) -> list[Path]:
    out = []
    for i, text in enumerate(bad_edge_lists().values()):
        f = tmp / f"edges{i}.csv"
        f.write_text(text, encoding="utf-8")
        out.append(f)
    for i, g in enumerate(bad_graphmls().values()):
        f = tmp / f"grid{i}.graphml"
        if isinstance(g, bytes):
            f.write_bytes(g)
        elif isinstance(g, str):
            f.write_text(g)
        else:
            nx.write_graphml(g, f)
        out.append(f)
    (tmp / "binary_edges.csv").write_bytes(b"\xff\xfe" + bytes(range(256)))
    return [*out, tmp / "binary_edges.csv", tmp / "a_folder.csv"]


def test_every_bad_grid_file_is_a_config_error(tmp_path):
    (tmp_path / "a_folder.csv").mkdir()
    for f in grid_files(tmp_path):
        with pytest.raises(ConfigError) as info:
            build_grid(str(f))
        msg = str(info.value)
        assert "\n" not in msg and str(f) in msg, (f.name, msg)
        with pytest.raises(ConfigError):
            DIPIModel(seed=1, grid=str(f), hours=2)


def test_every_bad_grid_file_through_the_command_line(tmp_path):
    (tmp_path / "a_folder.csv").mkdir()
    out = tmp_path / "out"
    cases = [run_case(["--grid", str(f)], out, [f.name]) for f in grid_files(tmp_path)]
    bad = tally("grid files", cases, drive(cases, tmp_path))
    assert not bad, "\n".join(bad[:20])


@settings(max_examples=300, deadline=None)
@given(r=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, 1e-9, 1e6, 1e308, 5e-324, 1e-10, 1.0000001e6])))
def test_any_edge_impedance_builds_a_finite_grid_or_is_refused(tmp_path_factory, r):
    """Property: an edge list with any impedance r is a grid with finite distances, or a
    ConfigError; never another exception and never an inf/NaN distance."""
    f = tmp_path_factory.mktemp("r") / "edges.csv"
    f.write_text(edge_list([("1", "2", "0.1"), ("2", "3", repr(r)), ("2", "4", "0.3"),
                            ("4", "1", "0.2")]))
    try:
        grid = build_grid(str(f))
    except ConfigError as exc:
        assert "\n" not in str(exc)
        assert not (r == 0 or 1e-9 <= r <= 1e6), (r, str(exc))
        return
    assert r == 0 or 1e-9 <= r <= 1e6
    assert math.isfinite(float(grid.distance.max()))


def test_load_toml_is_the_config_route_of_the_same_checks(tmp_path):
    """A bad value in a config file is reported with the file and line, on its own."""
    f = tmp_path / "c.toml"
    f.write_text("seed = 1\n[weather]\nforecast_lead_h = inf\n")
    with pytest.raises(ConfigError, match=r"c\.toml', line 3: forecast_lead_h = inf"):
        load_toml(f)
