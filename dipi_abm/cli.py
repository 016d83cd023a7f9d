"""Command line: ``dipi-abm run`` and friends.

Bad input (an unknown key, a value out of range, a broken grid or config
file) is reported in one line naming the key or file, with exit status 2 and
no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from . import __version__, jit
from . import config as cfg
from .errors import EXIT_BAD_INPUT, EXIT_FAILED, ConfigError, fault, one_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dipi-abm",
        description=(
            "Agent-based model of peer-to-peer distributed-energy trading under a blockchain "
            "credit mechanism: DPGCs and users on a distribution grid trade hour by hour, "
            "breach or keep their contracts, earn credit, and compete for blocks with a "
            "chance that grows with credit (POCA)."
        ),
        epilog="Run `dipi-abm run --help` for the options of a run, `dipi-abm keys` for "
               "every scenario key with its default, unit and allowed range.",
    )
    parser.add_argument("--version", action="version", version=f"dipi-abm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run", help="run one scenario and write its results",
        description=(
            "Run one scenario: hourly forecast, orders, matching, delivery, settlement, "
            "credit and consensus. Writes OUT/model.parquet (one row per hour), "
            "OUT/agents.parquet (per party every agent_report_every hours), OUT/summary.json "
            "(every parameter and the summary KPIs; written last) and PNG plots. Values "
            "are taken from the defaults, then --config, then --grid/--hours/--seed, "
            "then --set, the later winning."
        ),
    )
    run.add_argument("--config", metavar="FILE.toml", help="scenario file: any scenario key "
                     "at top level or inside [tables] (see `dipi-abm keys`)")
    run.add_argument("--hours", type=int, metavar="N", help="simulated hours (default 168)")
    run.add_argument("--seed", type=int, metavar="S", help="master seed (default: fresh "
                     "entropy, recorded in summary.json)")
    run.add_argument("--out", metavar="DIR", default="dipi_results",
                     help="output folder (default: ./dipi_results)")
    run.add_argument("--grid", metavar="FILE", help="grid: 'ieee33', 'synthetic', or a "
                     "GraphML / edge-list file with r_ohm (or weight) per edge")
    run.add_argument("--set", dest="assignments", action="append", default=[],
                     metavar="KEY=VALUE", help="set any scenario key; repeatable; values "
                     "are TOML (e.g. --set matching=centralized --set natural_factor=0.2)")
    run.add_argument("--ledger", metavar="PATH", help="write the DU1/JY1/LH1 chains to this "
                     "new SQLite file as the run goes (ledger_detail sets full/digest)")
    run.add_argument("--force", action="store_true", help="write into an --out folder that "
                     "holds other files (an earlier run's results are always replaced)")
    run.add_argument("--keys", metavar="PATH", help="save the nodes' and the grid company's "
                     "Ed25519 private keys to this new file (owner-only, mode 0600); "
                     "without it they are discarded when the run ends")
    run.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    verify = sub.add_parser(
        "verify-ledger", help="check every hash, signature and cross-chain link of a ledger",
        description="Check a ledger written by `dipi-abm run --ledger`: every block hash, "
                    "previous-hash link, Merkle root and producer signature (against the keys "
                    "registered in the genesis), the LH1 record of the DU1 and JY1 roots, "
                    "equal lengths and hours on the three chains, every consensus target "
                    "re-derived from the committed parameters and the credit on LH1, the "
                    "meta table against the committed run record, every readable record's "
                    "encoding and amounts, the file's schema and SQLite integrity; with an "
                    "anchor, the chain heads and the grid company's key. Exit 0: intact (what "
                    "could not be checked is listed); 1: altered (the chain and first bad "
                    "block are named); 2: missing, unreadable or not a ledger.")
    verify.add_argument("path", metavar="PATH", help="the ledger's SQLite file")
    verify.add_argument("--summary", metavar="FILE", help="the run's summary.json: its chain "
                        "lengths and head hashes anchor the check (detects truncation and "
                        "wholesale replacement)")
    verify.add_argument("--head", dest="heads", action="append", default=[],
                        metavar="CHAIN:HASH", help="a chain's head hash kept elsewhere, e.g. "
                        "LH1:3fa9...; repeatable")
    verify.add_argument("--authority-key", metavar="HEX", help="the grid company's Ed25519 "
                        "public key kept elsewhere (summary.json: chains.authority_key): the "
                        "genesis must register it (detects a ledger re-signed with new keys)")

    sweep = sub.add_parser(
        "sweep", help="run a parameter sweep (factorial, Latin hypercube or Sobol design)",
        description=(
            "Run every design point of SPEC.toml with its seeded replications, in a local "
            "process pool or on a Dask cluster. Writes DIR/runs.parquet (one row per run: "
            "its parameters, seed and summary KPIs; written last) and DIR/hourly/ (the "
            "hourly KPIs of every run, partitioned by run_id), then prints and writes the "
            "sweep's report (see `dipi-abm report --help`). Rerunning the same spec "
            "into the same DIR skips the finished runs. Spec format: "
            "`python -m pydoc dipi_abm.sweep.engine`."
        ),
    )
    sweep.add_argument("spec", metavar="SPEC.toml", help="[sweep] design, replications, "
                       "seed, samples; [base] fixed scenario keys; [factors] varied keys")
    sweep.add_argument("--out", metavar="DIR", required=True,
                       help="output folder; rerun into it to resume")
    sweep.add_argument("--workers", type=int, metavar="N", help="worker processes (default: "
                       "every core; 1 runs in this process); with --dask, LocalCluster workers")
    sweep.add_argument("--dask", action="store_true", help="run on Dask: a LocalCluster, "
                       "or the cluster at --scheduler")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address, e.g. "
                       "tcp://host:8786 (implies --dask; workers need dipi-abm installed)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    report = sub.add_parser(
        "report", help="summarise a finished sweep: intervals, differences, Sobol indices",
        description="Read SWEEP_DIR/runs.parquet and write, next to it, report.md and "
                    "report.html (each KPI's mean per factor level with its 95 % interval "
                    "over replications; differences between levels, paired where the "
                    "points share seeds; Sobol indices for sobol designs), PNG figures and "
                    "CSV tables. `dipi-abm sweep` writes the same report when it finishes.")
    report.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a folder written by "
                        "`dipi-abm sweep`")
    report.add_argument("--kpis", metavar="A,B,...", help="the KPIs of the tables and "
                        "figures (default: the headline KPIs; the CSV files have all)")
    report.add_argument("--contrast", action="append", default=[], metavar="A:B",
                        help="also level A minus level B of a factor (factor=A:B where two "
                             "factors share level names; a unique part of a level's name "
                             "will do), paired on seeds where the runs share them; repeatable")
    report.add_argument("--quiet", action="store_true", help="write the files, print nothing")

    app = sub.add_parser(
        "app", help="serve the interactive dashboard",
        description="Serve the Solara dashboard: set a scenario, Reset, Step or Play hours and "
                    "watch the grid, P2P trades, KPIs, credit, block production and the ledger; "
                    "pin a run as a baseline and download its data. Runs `solara run "
                    "dipi_abm/app.py` (Solara's front-end files are served locally, offline).")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1)")
    app.add_argument("--port", type=int, default=8765,
                     help="port (default 8765; 0: any free port)")
    app.add_argument("--open", action="store_true", help="open the page in a browser")

    keys = sub.add_parser("keys", help="list every scenario key (default, unit, range)",
                          description="List every scenario key with its default, unit, "
                                      "allowed values and meaning.")
    keys.add_argument("--markdown", action="store_true", help="as a Markdown table")
    return parser


def scenario_from_args(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.config:
        # Every value of the file is checked on its own, even one an option overrides.
        values.update(cfg.load_toml(args.config))
    if args.grid is not None:
        values["grid"] = args.grid
    if args.hours is not None:
        values["hours"] = args.hours
    if args.seed is not None:
        values["seed"] = args.seed
    if args.ledger is not None:
        values["ledger"] = args.ledger
    values.update(cfg.parse_assignments(args.assignments))
    return values


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .ledger.records import check_ledger_paths
    from .model import DIPIModel
    from .physics.grid import check_grid_source
    from .resources import check_disk, run_disk_needs
    from .results.output import ResultsWriter, foreign_entries, replacing_folder

    # Everything is checked before any work starts; the model takes the checked set.
    params = cfg.validate(scenario_from_args(args), streamed=True)  # agents.parquet streams
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}': exists and is not a folder")
    foreign = foreign_entries(out)
    if foreign and not args.force:
        shown = ", ".join(repr(f) for f in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ConfigError(f"--out '{out}': not empty and not a dipi-abm result (it holds "
                          f"{shown}); choose a new or empty folder, or add --force")
    check_grid_source(params.grid)
    from .sweep.caveats import run_policy

    if (warning := run_policy(params)) is not None:
        warnings.warn(warning, UserWarning, stacklevel=1)
    check_disk(run_disk_needs(params, out, params.ledger or None))
    keys = None if args.keys is None else Path(args.keys)
    check_ledger_paths(params, out, keys)
    start = time.perf_counter()
    # The run goes to a new sibling folder that replaces --out only once complete; the
    # per-party records stream into it as the run goes (memory stays flat). The model
    # (and its ledger file) is made once --out is known to be usable.
    with replacing_folder(out, force=args.force) as folder:
        model = DIPIModel(params=params)
        hours = model.params.hours
        output = ResultsWriter(model, folder, plots=not args.no_plots)
        try:
            with tqdm(total=hours, unit="h", desc="simulating", disable=args.quiet,
                      dynamic_ncols=True) as bar:
                jit.notice = lambda line: tqdm.write(line, file=sys.stderr)  # above the bar
                model.run(progress=bar.update)
        except BaseException:
            output.discard()
            raise
        finally:
            model.close()  # an interrupted run's ledger keeps its whole periods
            if keys is not None:  # also after an interruption: the kept periods are signed
                model.node_keys.save(keys)
        summary = output.finish()
    if not args.quiet:
        print(format_summary(summary, args.out, time.perf_counter() - start))
    return 0


def format_summary(s: dict[str, Any], out: str, seconds: float) -> str:
    p = s["params"]
    lines = [
        f"dipi-abm {s['version']}: {s['hours']} h, {p['n_dpgc']} DPGCs + {p['n_users']} users "
        f"on {s['n_buses']} buses ({p['grid']}), matching={p['matching']}, "
        f"credit={p['credit_rule']}, consensus={p['consensus']}, seed={s['seed']}",
        f"  P2P traded           {s['p2p_volume_kwh'] / 1e3:12.1f} MWh "
        f"(delivered {s['p2p_delivered_kwh'] / 1e3:.1f} MWh)",
        f"  bought from grid     {s['grid_purchase_kwh'] / 1e3:12.1f} MWh",
        f"  sold to grid         {s['grid_sale_kwh'] / 1e3:12.1f} MWh",
        f"  peak line loading    {s['peak_line_loading']:12.3f} of the rating"
        + ("  (more than the feeder carries: trades were curtailed; docs/model.md §2)"
           if s["peak_line_loading"] > 1 + 1e-9 else ""),
        f"  transaction effic.   {s['transaction_efficiency']:12.3f}",
        f"  breach rate          {s['breach_rate']:12.3f}  ({s['breaches']} breaches, "
        f"{s['breach_shortfall_kwh'] / 1e3:.1f} MWh short)",
        f"  mean credit          {s['mean_credit_dpgc']:12.2f} DPGCs, "
        f"{s['mean_credit_user']:.2f} users",
        f"  clearing price       {s['price_mean']:12.4f} yuan/kWh (sd {s['price_std']:.4f})",
        f"  users' net cost      {s['user_cost_yuan']:12.0f} yuan",
        f"  results in {out}/ ({', '.join(s['files'])}), {seconds:.1f} s",
    ]
    return "\n".join(lines)


def cmd_verify(args: argparse.Namespace) -> int:
    from .ledger.verify import anchor_from_heads, anchor_from_summary, authority_key, verify_ledger

    if args.summary is not None and args.heads:
        raise ConfigError("verify-ledger: give --summary or --head, not both")
    anchor: dict[str, Any] = {}
    if args.summary is not None:
        anchor = anchor_from_summary(args.summary)
    elif args.heads:
        anchor = anchor_from_heads(args.heads)
    if args.authority_key is not None:
        key = authority_key(args.authority_key)
        if anchor.get("authority_key", key) != key:
            raise ConfigError(f"--authority-key differs from the one in '{args.summary}'")
        anchor["authority_key"] = key
    report = verify_ledger(args.path, anchor)
    if report.ok:
        print(f"ledger '{args.path}': intact ({report.blocks} blocks on DU1, JY1 and LH1)")
        for what in report.unchecked:
            print(f"  not checked: {what}")
        return 0
    where = report.chain if report.index is None else f"{report.chain} block {report.index}"
    line = (f"ledger '{args.path}': ALTERED: {where}: {report.problem} ({report.blocks} "
            "blocks before it verified)")
    # names and values read from a forged file reach the terminal escaped, never raw
    print("".join(c if c.isprintable() else ascii(c)[1:-1] for c in line))
    return 1


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep.engine import SweepRunError, run_sweep

    start = time.perf_counter()
    try:
        runs = run_sweep(args.spec, args.out, workers=args.workers, scheduler=args.scheduler,
                         use_dask=args.dask, progress=not args.quiet)
    except SweepRunError as exc:  # a run failed or a worker died: one line, resumable
        print(f"dipi-abm: sweep stopped: {one_line(exc)} (folder {args.out}/)",
              file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        print(f"{len(runs)} runs: {args.out}/runs.parquet, hourly KPIs in {args.out}/hourly/ "
              f"({time.perf_counter() - start:.1f} s)\n")
    return _report(args.out, None, args.quiet)


def _report(sweep_dir: str, kpis: str | None, quiet: bool, contrasts: list[str] = ()) -> int:
    from .sweep.report import build_report, format_report, write_report

    names = None if kpis is None else [k.strip() for k in kpis.split(",") if k.strip()]
    report = build_report(sweep_dir, names, contrasts)
    files = write_report(sweep_dir, report)
    if not quiet:
        print(format_report(report, files))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    return _report(args.sweep_dir, args.kpis, args.quiet, args.contrast)


def cmd_app(args: argparse.Namespace) -> int:
    from .dashboard import serve  # no Solara import here: a missing extra is a one-line error

    return serve(host=args.host, port=args.port, open_browser=args.open)


def cmd_keys(args: argparse.Namespace) -> int:
    if args.markdown:
        print(cfg.markdown_table())
        return 0
    group = None
    for p in cfg.all_params():
        if p.group != group:
            group = p.group
            print(f"\n[{group}]")
        default = "(none)" if p.default is None else cfg._fmt(p.default)
        print(f"  {p.name} = {default}  [{p.unit}]  {p.allowed()}\n      {p.doc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Every failure the user can cause or meet ends in one line on stderr and its exit
    status (docs/robustness.md); only a bug keeps its traceback."""
    args = None
    stdout, sys.stdout = sys.stdout, _Stdout(sys.stdout)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        status = _main(parser, args)
        sys.stdout.flush()  # stdout on a full disk fails here, not at exit
        return status
    except BrokenPipeError:
        # `dipi-abm keys | head`: the reader left; say nothing more (and nothing at exit).
        _silence_stdout()
        return 0
    except BaseException as exc:
        found = fault(exc)
        if found is None or isinstance(exc, SystemExit):
            raise
        status, message = found
        if isinstance(exc, OSError) and exc.filename == _Stdout.NAME:
            _silence_stdout()  # nor at exit
        if status == 130:
            command = getattr(args, "command", None)
            message = (f"interrupted; finished runs are kept in {args.out}/, run the same "
                       "command again to resume" if command == "sweep" else
                       "interrupted; no complete result was written" if command == "run"
                       else "interrupted")
        print(f"dipi-abm: {message}", file=sys.stderr)
        return status
    finally:
        sys.stdout = stdout


class _Stdout:
    """Standard output whose write errors name it (stdout on a full device)."""

    NAME = "standard output"

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, text: str) -> int:
        try:
            return self._inner.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.NAME) from None

    def flush(self) -> None:
        try:
            self._inner.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.NAME) from None


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    with warnings.catch_warnings():  # a warning is one line, like an error
        warnings.showwarning = lambda message, *_a, **_k: print(
            f"dipi-abm: warning: {message}", file=sys.stderr)
        return _dispatch(parser, args)


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    commands = {"run": cmd_run, "verify-ledger": cmd_verify, "app": cmd_app,
                "sweep": cmd_sweep, "report": cmd_report, "keys": cmd_keys}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
