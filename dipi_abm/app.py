"""The interactive dashboard (Solara): ``dipi-abm app`` or ``solara run dipi_abm/app.py``.

The left column holds the run buttons (Reset rebuilds the model from the
controls, Step and Play advance hours; the card stays in view, beside the
scenario form), the A/B comparison (:mod:`dipi_abm.dashboard.compare`: pin
the run on screen as a baseline, on its seed; replicate both arms), the
scenario form, built from the scenario registry
(:mod:`dipi_abm.dashboard.controls`; a select for every rule key), and the
files: the scenario as TOML for ``dipi-abm run --config`` or as a command
line, the tables and the figures. A value the registry refuses is shown with
its one-line message and the model keeps its previous settings. The main
area shows the grid aggregated per bus with this hour's P2P flows on the
lines (zoom, hover a bus for its details), the summary KPIs (with their
differences to the baseline), the hourly series (interactive,
:mod:`dipi_abm.dashboard.charts`), credit and block production, and the
ledger with a Verify button. A step that takes over half a second shows a
busy bar.

Every browser session has its own model on its own thread
(:class:`~dipi_abm.dashboard.runner.ModelRunner`).

Like a Mesa ``SolaraViz`` page, but with its own model factory: Mesa 3.3's
Reset calls the model class with the raw control values and would crash on
a refused value, and its controls cannot express the registry's ranges.
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import solara
import solara.lab

from dipi_abm import config as cfg
from dipi_abm import jit
from dipi_abm.dashboard import charts, compare, export, figures, views
from dipi_abm.dashboard import controls as ctl
from dipi_abm.dashboard.runner import ModelRunner
from dipi_abm.dashboard.security import Uploads, check_page_values
from dipi_abm.dashboard.server import serve
from dipi_abm.errors import ConfigError, one_line

__all__ = ["Page", "serve"]

log = logging.getLogger(__name__)

# Solara warns on every page load from 127.0.0.1 over http that it falls back to
# samesite=lax cookies (12 lines); that fallback is right for a local dashboard.
warnings.filterwarnings("ignore", message="Cookies with samesite=none require https")

#: Shortest time between two frames while playing, seconds (a Pause cuts it short).
PLAY_INTERVAL_S = 0.1
#: Shortest pause between a frame drawn and the next, seconds (clicks are read then).
FRAME_GAP_S = 0.05
#: Longest wait for the page to draw a Play frame (no page: go on without it), seconds.
DRAW_TIMEOUT_S = 10.0
#: Choices of hours per Step click / Play frame.
HOURS_PER_FRAME = (1, 6, 24)
#: A step or Reset running longer than this shows the busy bar, seconds (the environment
#: variable DIPI_BUSY_AFTER_S sets another, 0 for every step).
BUSY_AFTER_S = 0.5


def busy_after_seconds() -> float:
    """The busy bar's delay: ``DIPI_BUSY_AFTER_S`` if set, else :data:`BUSY_AFTER_S`."""
    text = os.environ.get("DIPI_BUSY_AFTER_S", "").strip()
    if not text:
        return BUSY_AFTER_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 3600:
        raise ConfigError(f"DIPI_BUSY_AFTER_S = {text!r}: seconds from 0 to 3600 allowed")
    return value

# Session state: Solara keeps one value of each per browser session.
entries = solara.reactive(ctl.default_values())
extra_keys = solara.reactive("")
uploaded = solara.reactive(None)  # (file name, saved path) of a dropped grid file
notice = solara.reactive(None)  # (level, text): a refused input or a failed step


def _compiling(line: str) -> None:
    """A kernel compiles before its first use (once per install): the page says so."""
    jit._to_stderr(line)
    notice.set(("info", f"{line.removeprefix('dipi-abm: ').capitalize()}: the step waits "
                        "for it."))


jit.notice = _compiling
snapshot = solara.reactive(None)  # views.Snapshot of the hour on screen
playing = solara.reactive(False)
hours_per_frame = solara.reactive(1)
pausing = solara.reactive(False)  # Pause pressed; the hour being computed finishes
verify_result = solara.reactive(None)  # (build, hour, ok, text) from the last Verify
baseline = solara.reactive(None)  # views.Baseline pinned for the A/B comparison
zoom = solara.reactive(1)  # grid view zoom factor (figures.ZOOMS)
centre = solara.reactive(None)  # bus row the zoomed grid view centres on
bus_names = solara.reactive(())  # the current grid's bus labels (set on Reset)
busy = solara.reactive(False)  # a step or Reset has run for over BUSY_AFTER_S
action = solara.reactive(None)  # (kind, serial) of the last Step/Reset click (see request)
working = solara.reactive(False)  # that Step or Reset is running
n_reps = solara.reactive(compare.REPLICATIONS[0])  # replications per arm asked for
rep_request = solara.reactive(0)  # bumped by "Replicate": the task runs on each new value
rep_progress = solara.reactive(None)  # (runs done, runs in all) while replicating
replications = solara.reactive(None)  # (baseline, build, compare.Replications)
time_range = solara.reactive("all")  # charts.RANGES key of the series' time range
has_model = solara.lab.computed(lambda: snapshot.value is not None)

CSS = """
.dipi-hour { font-size: 1.35rem; font-weight: 600; }
.dipi-headline { color: #555; font-size: 0.9rem; }
.dipi-note { display: block; }
.dipi-group { display: block; font-weight: 600; font-size: 0.8rem; text-transform: uppercase;
              letter-spacing: 0.04em; color: #546e7a; margin: 10px 0 2px 0; }
.dipi-kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr));
             gap: 8px; }
.dipi-kpi { border: 1px solid #e0e0e0; border-radius: 6px; padding: 6px 10px;
            background: #fafafa; }
.dipi-kpi .label { font-size: 0.75rem; color: #607d8b; }
.dipi-kpi .value { font-size: 1.3rem; font-weight: 600; color: #263238; }
.dipi-kpi .unit { font-size: 0.7rem; color: #78909c; }
.dipi-blocks-box { overflow-x: auto; max-width: 100%; }
.dipi-blocks { border-collapse: collapse; font-family: monospace; font-size: 0.78rem;
               white-space: nowrap; }
.dipi-blocks th, .dipi-blocks td { border-bottom: 1px solid #e0e0e0; padding: 2px 6px;
                                   text-align: left; }
.dipi-blocks th { color: #607d8b; font-family: sans-serif; }
.dipi-note { color: #607d8b; font-size: 0.8rem; }
.dipi-figure img, img.dipi-figure { max-width: 100%; height: auto; }
.dipi-kpi .delta { font-size: 0.75rem; font-weight: 600; color: #546e7a; }
.dipi-kpi .delta.better { color: #2e7d32; }
.dipi-kpi .delta.worse { color: #c62828; }
.dipi-gridwrap { position: relative; width: 100%; max-width: 1100px; }
.dipi-gridwrap img { display: block; width: 100%; height: auto; }
.dipi-hotspots { position: absolute; left: 0; top: 0; width: 100%; height: 100%;
                 pointer-events: none; }
.dipi-bus { position: absolute; width: 20px; height: 20px; margin: -10px 0 0 -10px;
            border-radius: 50%; pointer-events: auto; cursor: help; }
.dipi-bus:hover { outline: 2px solid #263238; }
.dipi-bus .dipi-tip { display: none; position: absolute; left: 22px; top: 14px; z-index: 20;
                      background: #fff; border: 1px solid #90a4ae; border-radius: 4px;
                      padding: 4px 8px; font-size: 0.75rem; line-height: 1.35;
                      white-space: nowrap; box-shadow: 0 2px 6px rgba(0,0,0,0.2); }
.dipi-bus.right .dipi-tip { left: auto; right: 22px; }
.dipi-bus:hover .dipi-tip { display: block; }
.dipi-bus .dipi-tip b { color: #263238; }
.dipi-exports .v-btn { margin: 2px 4px 2px 0; }
.dipi-kpi .delta.same { color: #78909c; font-weight: 400; }
.dipi-layout { display: grid; grid-template-columns: minmax(280px, 340px) minmax(0, 1fr);
               gap: 12px; align-items: start; padding: 8px; }
.dipi-side { position: sticky; top: 0; max-height: 100vh; overflow-y: auto; }
.dipi-side .dipi-run { position: sticky; top: 0; z-index: 5; }
@media (max-width: 760px) {
  .dipi-layout { grid-template-columns: minmax(0, 1fr); }
  .dipi-side { position: static; max-height: none; overflow: visible; }
}
.dipi-command { font-family: monospace; font-size: 0.75rem; word-break: break-all;
                background: #f5f5f5; padding: 4px 6px; border-radius: 4px; display: block; }
"""


# ------------------------------------------------------------------------------ actions
def apply_controls(runner: ModelRunner) -> None:
    """Reset: rebuild the model from the controls, or say why not and keep the old one."""
    runner.request_stop()  # a Play loop stops after its hour (its old-model hour is dropped)
    grid_file = uploaded.value[1] if uploaded.value else None
    try:
        values = ctl.scenario_from_controls(entries.value, extra=extra_keys.value,
                                            uploaded_grid=grid_file)
        check_page_values(values, grid_file)
        with busy_after():
            snap = runner.rebuild(values)
    except (ConfigError, RecursionError) as exc:  # one line, never a traceback
        kept = " The model keeps its previous settings." if runner.model is not None else ""
        notice.set(("error", f"Not applied: {_named(exc)}.{kept}"))
        return
    inert = cfg.inert_settings([snap.params])
    notice.set(("info", "Applied, but " + "; ".join(inert) + ".") if inert else None)
    names = tuple(str(b) for b in snap.grid.buses)
    if names != bus_names.value:
        bus_names.set(names)
        centre.set(None)
    snapshot.set(snap)


def advance(runner: ModelRunner, hours: int, *,
            stoppable: bool = False) -> views.Snapshot | None:
    """Step: advance ``hours`` hours and show the hour the model reached; None if the
    step failed (the page says why)."""
    if runner.model is None:
        return None
    try:
        with busy_after():
            snap = runner.step(hours, stoppable=stoppable)
    except Exception as exc:  # a failing step must not take the page down
        log.exception("step failed")
        runner.request_stop()
        notice.set(("error", f"The step failed: {type(exc).__name__}: {exc}"))
        return None
    if notice.value and notice.value[1].startswith("Compiling"):
        notice.set(None)  # compiled: the step ran
    if snap.build == runner.build:  # a Reset meanwhile replaced the model: drop the old hour
        snapshot.set(snap)
    return snap


@contextlib.contextmanager
def busy_after(seconds: float | None = None) -> Iterator[None]:
    """Show the busy bar if the block runs longer than ``seconds`` (the first step after
    an install compiles the model), and hide it when it ends."""
    try:  # the timer thread sets the bar in this browser session's context
        from solara.server import kernel_context
        context: Any = kernel_context.get_current_context()
    except (ImportError, RuntimeError):  # no session (tests): a plain context
        context = contextlib.nullcontext()
    lock, done = threading.Lock(), [False]

    def show() -> None:
        with lock, context:
            if not done[0]:
                busy.set(True)

    timer = threading.Timer(busy_after_seconds() if seconds is None else seconds, show)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            done[0] = True
        if busy.value:
            busy.set(False)


def request(kind: str) -> None:
    """A Step or Reset click: :func:`RunControls` runs it on a task thread."""
    working.set(True)
    action.set((kind, (action.value or ("", 0))[1] + 1))


def play(runner: ModelRunner) -> None:
    """The Play loop (on a task thread): frames until Pause, the run's end or an error.

    Pause (:func:`pause`) asks the runner to stop after the hour being computed;
    the loop then shows that hour and only afterwards turns the button back to
    Play, so the hour on screen is the hour the model has reached.

    Each frame waits until the page has drawn it, then leaves a gap: Solara
    draws a frame on whichever thread holds its render lock, and a click's
    handler thread that is drawing when the next frame arrives keeps drawing,
    so frames back to back would hold off every click (Pause included) until
    the run ends.
    """
    try:
        while not runner.stop_requested and runner.running:
            start = time.perf_counter()
            snap = advance(runner, hours_per_frame.value, stoppable=True)
            if snap is None:
                break
            runner.wait_drawn((snap.build, snap.hour), DRAW_TIMEOUT_S)
            gap = max(FRAME_GAP_S, PLAY_INTERVAL_S - (time.perf_counter() - start))
            if runner.wait_for_stop(gap):
                break
    finally:
        pausing.set(False)
        playing.set(False)


def start_playing(runner: ModelRunner) -> None:
    runner.clear_stop()
    playing.set(True)


def pause(runner: ModelRunner) -> None:
    runner.request_stop()
    pausing.set(True)


def play_or_pause(runner: ModelRunner) -> None:
    """The Play/Pause button. It acts on the state, not on the label it was drawn
    with: a click can reach the server through the widget of either label."""
    if playing.value:
        pause(runner)
    elif snapshot.value is not None and snapshot.value.running:
        start_playing(runner)


def verify(runner: ModelRunner) -> None:
    snap = snapshot.value
    ok, text = runner.verify()
    verify_result.set((snap.build, snap.hour, ok, text) if snap is not None else None)


def current_verify() -> tuple[bool, str] | None:
    """The last Verify's (ok, text) while the hour it checked is on screen: any step
    (or Reset) clears it."""
    result, snap = verify_result.value, snapshot.value
    if result is None or snap is None or result[:2] != (snap.build, snap.hour):
        return None
    return result[2], result[3]


def pin_baseline() -> None:
    """Pin the run on screen, and its seed: the next Reset runs on the same seed (common
    random numbers), so the two arms see the same weather."""
    snap = snapshot.value
    if snap is None:
        return
    baseline.set(views.Baseline(snap))
    replications.set(None)
    seed = snap.summary.get("seed")
    if seed is not None:
        set_entry("seed", str(seed))
        notice.set(("info", f"Baseline pinned on seed {seed}; the seed field keeps it, so "
                            "the next Reset runs on the same weather."))


def run_replications(base: views.Baseline, snap: views.Snapshot, request: int) -> None:
    """Replicate both arms up to the hour on screen on common seeds (on a task thread);
    a newer request or a Reset drops the result."""
    def stale() -> bool:
        return rep_request.value != request or baseline.value is not base

    seeds = compare.rep_seeds(int(base.snap.summary["seed"]), n_reps.value)
    rep_progress.set((0, 2 * len(seeds)))
    try:
        result = compare.replicate(base.snap.params, snap.params, max(snap.hour, 1), seeds,
                                   progress=lambda d, n: rep_progress.set((d, n)), stop=stale)
    except Exception as exc:  # the page says why; the server log keeps the traceback
        log.exception("replicating failed")
        notice.set(("error", f"Replications failed: {type(exc).__name__}: {exc}"))
        result = None
    if result is not None and not stale():
        replications.set((base, snap.build, result))
    rep_progress.set(None)


def current_replications() -> compare.Replications | None:
    """The replications of the baseline and the run on screen, at the hour on screen."""
    got, snap = replications.value, snapshot.value
    if got is None or snap is None:
        return None
    base, build, result = got
    ok = base is baseline.value and build == snap.build and result.hour == snap.hour
    return result if ok else None


def view_options(with_zoom: bool = False) -> figures.ViewOptions:
    if with_zoom:
        return figures.ViewOptions(baseline.value, zoom.value, centre.value)
    return figures.ViewOptions(baseline.value)


def downloads(runner: ModelRunner) -> list[tuple[str, str, str, Callable[[], bytes]]]:
    """(file name, label, MIME type, data) of every download; the data is made when the
    button is pressed, from the hour on screen."""

    def table(name: str) -> Callable[[], bytes]:
        def data() -> bytes:
            snap = snapshot.value
            if name == "model.csv":
                return export.hourly_csv(snap)
            if name == "model.parquet":
                return export.hourly_parquet(snap)
            if name == "agents.parquet":
                records = runner.read(lambda m: export.party_records(m, snap.hour))
                return export.parquet_bytes(records)
            return export.summary_json(snap)
        return data

    def figure(name: str, fmt: str) -> Callable[[], bytes]:
        def data() -> bytes:
            return figures.figure_file(name, snapshot.value, fmt,
                                       view_options(with_zoom=name == "grid"))
        return data

    out = [(name, label, mime, table(name)) for name, label, mime in export.TABLES]
    for name in figures.VIEWS:
        for fmt, mime in export.FIGURE_MIME.items():
            out.append((f"{name}.{fmt}", f"{name}.{fmt}", mime, figure(name, fmt)))
    return out


def _named(exc: Exception) -> str:
    """A ConfigError's message, as one line, with an uploaded grid's temporary path shown as
    its name."""
    text = one_line(exc if isinstance(exc, ConfigError) else "a value is nested too deeply")
    if uploaded.value:
        name, path = uploaded.value
        text = text.replace(str(path), name)
    return text


def set_entry(key: str, value: Any) -> None:
    entries.set({**entries.value, key: value})


def on_grid_file(info: dict[str, Any], uploads: Uploads) -> None:
    """A grid file was dropped: save it (size-capped), check it now, and select it. A
    refused file is deleted at once and the previous one stays selected."""
    from dipi_abm.physics.grid import build_grid

    name = str(info.get("name") or "grid.graphml")
    data = info.get("data")
    kept = Path(uploaded.value[1]) if uploaded.value else None
    path = None
    try:
        path = uploads.save(name, info["file_obj"] if data is None else io.BytesIO(data),
                            info.get("size"))
        grid = build_grid(str(path))
    except ConfigError as exc:
        uploads.keep_only(kept)
        text = one_line(exc)
        notice.set(("error", "Grid file refused: " + (text.replace(str(path), name)
                                                      if path else text)))
        return
    uploads.keep_only(path)
    uploaded.set((name, str(path)))
    set_entry("grid", ctl.UPLOADED)
    notice.set(("info", f"Grid file '{one_line(name, 80)}' read: {grid.n_buses} buses. "
                        "Press Reset to build the model on it."))


# ------------------------------------------------------------------------------ sidebar
@solara.component
def RunControls(runner: ModelRunner) -> None:
    snap = snapshot.value
    running = snap is not None and snap.running

    def play_loop() -> None:
        if playing.value:
            play(runner)

    solara.lab.use_task(play_loop, dependencies=[playing.value], prefer_threaded=True)

    def act() -> None:  # a Step or Reset, off the click's thread so the busy bar can draw
        if action.value is not None:
            try:
                (advance(runner, hours_per_frame.value) if action.value[0] == "step"
                 else apply_controls(runner))
            finally:
                working.set(False)

    solara.lab.use_task(act, dependencies=[action.value], prefer_threaded=True)
    idle = not working.value

    with solara.Card("Run", margin=0, classes=["dipi-run"]):
        solara.Text(views.hour_label(snap) if snap else "No model yet", classes=["dipi-hour"])
        with solara.Row(gap="8px"):
            solara.Button("Reset", color="primary", icon_name="mdi-restart", disabled=not idle,
                          on_click=lambda: request("reset"))
            label = ("Pausing…" if pausing.value else "Pause") if playing.value else "Play"
            solara.Button(label, color="primary",
                          icon_name="mdi-pause" if playing.value else "mdi-play",
                          disabled=pausing.value or not (running and idle or playing.value),
                          on_click=lambda: play_or_pause(runner))
            solara.Button("Step", color="primary", icon_name="mdi-step-forward",
                          disabled=playing.value or not running or not idle,
                          on_click=lambda: request("step"))
        solara.ToggleButtonsSingle(value=hours_per_frame, values=list(HOURS_PER_FRAME),
                                   dense=True)
        solara.Text("hours per Step / Play frame", classes=["dipi-note"])
        if busy.value:
            with solara.Div(classes=["dipi-busy"]):
                solara.ProgressLinear(True)
                solara.Text("Computing… (the first step after an install compiles the "
                            "model: up to a minute)", classes=["dipi-note"])
        if notice.value:
            level, text = notice.value
            if level == "error":
                solara.Error(text, classes=["dipi-notice"])
            else:
                solara.Info(text, classes=["dipi-notice"])


@solara.component
def Compare() -> None:
    """Pin the run on screen as the baseline (with its seed), replicate both arms."""
    base, snap = baseline.value, snapshot.value
    request = rep_request.value

    def replicate() -> None:
        if request and base is not None and snap is not None:
            run_replications(base, snap, request)

    solara.lab.use_task(replicate, dependencies=[request], prefer_threaded=True)
    with solara.Card("Compare (A/B)", margin=0, classes=["dipi-compare"]):
        with solara.Row(gap="8px", style={"flex-wrap": "wrap"}):
            solara.Button("Pin as baseline", color="primary", icon_name="mdi-pin",
                          disabled=snap is None or playing.value, on_click=pin_baseline)
            solara.Button("Clear baseline", icon_name="mdi-pin-off", disabled=base is None,
                          on_click=lambda: baseline.set(None))
        if base is None:
            solara.Text("Pin this run, change the scenario, Reset and run again: both runs "
                        "share the baseline's seed (the same weather), the series show both "
                        "and the KPI tiles the differences.", classes=["dipi-note"])
            return
        solara.Text(f"Baseline: {base.describe()}", classes=["dipi-note", "dipi-baseline"])
        if snap is None:
            return
        diff = base.differences(snap)
        text = ("Differs from this run in: " + "; ".join(diff)) if diff else \
            "Same scenario as this run."
        solara.Text(text, classes=["dipi-note", "dipi-baseline-diff"])
        if base.snap.summary.get("seed") != snap.summary.get("seed"):
            solara.Warning("The two runs have different seeds: their difference mixes in "
                           "the weather's. Pin again, or set the seed field to the "
                           "baseline's and Reset.", dense=True, classes=["dipi-seed-warning"])
        warning = compare.static_rule_warning(base.snap.params, snap.params)
        if warning:
            solara.Warning(warning, dense=True, classes=["dipi-static-warning"])
        with solara.Row(gap="8px", style={"align-items": "center"}):
            solara.Select("replications", values=list(compare.REPLICATIONS), value=n_reps,
                          style={"max-width": "110px"}, classes=["dipi-nreps"])
            solara.Button("Replicate both arms", icon_name="mdi-chart-bell-curve",
                          disabled=snap.hour < 1 or rep_progress.value is not None,
                          on_click=lambda: rep_request.set(rep_request.value + 1))
        progress = rep_progress.value
        if progress is not None:
            solara.ProgressLinear(100 * progress[0] / max(progress[1], 1))
            solara.Text(f"Replicating: {progress[0]} of {progress[1]} runs",
                        classes=["dipi-note", "dipi-rep-progress"])
        reps = current_replications()
        if reps is not None:
            solara.Text(f"{reps.n} replications of each arm to hour {reps.hour}, on common "
                        f"seeds: the tiles give the mean difference with its "
                        f"{compare.LEVEL:.0%} interval; only one that excludes 0 is "
                        "coloured.", classes=["dipi-note", "dipi-rep-done"])
        elif base.snap.hour != snap.hour:
            solara.Text(f"The tiles compare runs at the same hour: step to hour "
                        f"{base.snap.hour} (the baseline's), or replicate both arms to "
                        "this hour.", classes=["dipi-note", "dipi-hour-mismatch"])
        else:
            solara.Text("One pair of runs: no interval, so no difference is coloured; "
                        "replicate both arms for one.", classes=["dipi-note"])


@solara.component
def Downloads(runner: ModelRunner) -> None:
    """Download buttons; they read the hour on screen when pressed (so this component
    does not re-render every hour, and a download in progress is not reset)."""
    items = solara.use_memo(lambda: downloads(runner), [runner])
    with solara.Card("Download", margin=0, classes=["dipi-exports"]):
        ScenarioFiles()
        solara.Text("Tables as `dipi-abm run --out` writes them, at the hour on screen; "
                    "figures as shown.", classes=["dipi-note"])
        with solara.Row(gap="0px", style={"flex-wrap": "wrap"}):
            for name, label, mime, data in items:
                solara.FileDownload(data, filename=name, label=label, mime_type=mime)


@solara.component
def ScenarioFiles() -> None:
    """The run on screen as a scenario file for `dipi-abm run --config`, and as a command."""
    snap = snapshot.value
    if snap is None:
        return
    seed = snap.summary.get("seed")
    command = export.scenario_command(snap.params, seed)
    solara.FileDownload(lambda: export.scenario_toml(snap.params, seed).encode(),
                        filename="scenario.toml", label="Save scenario (TOML)",
                        mime_type="application/toml")
    copy = ("navigator.clipboard.writeText(this.dataset.command);"
            "this.innerText='Copied';")
    solara.HTML(unsafe_innerHTML=(
        f'<button class="v-btn v-btn--outlined v-size--small dipi-copy" '
        f'data-command="{html.escape(command)}" onclick="{html.escape(copy)}">'
        f'Copy as command</button><code class="dipi-command">{html.escape(command)}</code>'))


@solara.component
def ControlField(control: ctl.Control, value: Any, error: str | None) -> None:
    def on_value(v: Any, key: str = control.key) -> None:
        set_entry(key, v)

    if control.widget == "select":
        choices = list(control.choices)
        if control.key == "grid" and uploaded.value:
            choices.append(ctl.UPLOADED)
        solara.Select(control.label, values=choices, value=value, on_value=on_value)
    elif control.widget == "multiselect":
        solara.SelectMultiple(control.label, values=list(value), all_values=list(control.choices),
                              on_value=lambda v: on_value(ctl.pick_names(list(value), v)),
                              dense=True, classes=[f"dipi-{control.key}"])
        if error:
            solara.Text(error, classes=["dipi-note", "dipi-field-error"])
    elif control.widget == "checkbox":
        solara.Checkbox(label=control.label, value=bool(value), on_value=on_value)
    else:
        solara.InputText(control.label, value=str(value), on_value=on_value,
                         error=error or False, message=control.hint)


@solara.component
def Parameters(uploads: Uploads) -> None:
    values = entries.value
    errors = ctl.field_errors(values)
    with solara.Card("Scenario", margin=0):
        solara.Text("Edit, then press Reset. Ranges come from the scenario registry "
                    "(dipi-abm keys).", classes=["dipi-note"])
        for title, group in ctl.control_groups():
            solara.Text(title, classes=["dipi-group"])
            for control in group:
                ControlField(control, values.get(control.key, control.default),
                             errors.get(control.key))
            if any(c.key == "grid" for c in group):
                name = uploaded.value[0] if uploaded.value else None
                solara.FileDrop(label=f"Drop a GraphML / edge-list grid file here"
                                      f"{f' (now: {name})' if name else ''}",
                                on_file=lambda info: on_grid_file(info, uploads))
        solara.Text("Other keys", classes=["dipi-group"])
        solara.InputTextArea("key = value, one per line (any key of dipi-abm keys)",
                             value=extra_keys, rows=2, continuous_update=False)


# ------------------------------------------------------------------------------ main area
# The layout components below read no hourly state; only the leaves (header,
# figures, KPI tiles, ledger) read `snapshot`, so a new hour re-renders just them.
@solara.component
def Header() -> None:
    snap = snapshot.value
    with solara.Column(gap="0px"):
        solara.Text(views.hour_label(snap), classes=["dipi-hour", "dipi-hour-main"])
        solara.Text(views.headline(snap), classes=["dipi-headline"])


@solara.component
def FigureImage(view: figures.FigureView, name: str) -> None:
    snap, opts = snapshot.value, view_options()
    data = solara.use_memo(lambda: view.render(snap, opts), [snap, opts, view])
    if name == "credit":
        solara.Text(view.caption(snap), classes=["dipi-note", f"dipi-caption-{name}"])
    solara.Image(data, width="100%", classes=["dipi-figure", f"dipi-{name}"])


def hotspot_html(snap: views.Snapshot, spots: list[figures.Hotspot]) -> str:
    """Invisible spots over the buses of the grid image, each with its details on hover."""
    out = []
    for spot in spots:
        lines = figures.bus_details(snap, spot.bus)
        tip = f"<b>{html.escape(lines[0])}</b><br>" + "<br>".join(html.escape(x)
                                                                 for x in lines[1:])
        side = " right" if spot.left > 60 else ""
        name = html.escape(str(snap.grid.buses[spot.bus]))
        out.append(f'<div class="dipi-bus{side}" data-bus="{name}" '
                   f'style="left:{spot.left:.2f}%;top:{spot.top:.2f}%">'
                   f'<div class="dipi-tip">{tip}</div></div>')
    return "".join(out)


@solara.component
def GridFigure(view: figures.GridView) -> None:
    snap, opts = snapshot.value, view_options(with_zoom=True)

    def draw() -> tuple[bytes, str]:
        png = view.render(snap, opts)
        return png, hotspot_html(snap, view.hotspots)

    png, spots = solara.use_memo(draw, [snap, opts, view])
    solara.Text(view.caption(snap), classes=["dipi-note", "dipi-caption-grid"])
    with solara.Div(classes=["dipi-gridwrap"]):
        solara.Image(png, width="100%", classes=["dipi-figure", "dipi-grid"])
        solara.HTML(unsafe_innerHTML=spots, classes=["dipi-hotspots"])


@solara.component
def GridZoom() -> None:
    names = bus_names.value  # not the hour: this need not re-render every hour
    current = names[centre.value] if centre.value is not None and \
        centre.value < len(names) else None

    def on_centre(name: str | None) -> None:
        centre.set(names.index(name) if name in names else None)
        if zoom.value == 1 and name in names:
            zoom.set(2)

    with solara.Row(gap="12px", style={"align-items": "center"}):
        solara.Text("Zoom", classes=["dipi-note"])
        solara.ToggleButtonsSingle(value=zoom, values=list(figures.ZOOMS), dense=True,
                                   classes=["dipi-zoom"])
        solara.Select("centre on bus", values=list(names), value=current, on_value=on_centre,
                      classes=["dipi-centre"], style={"max-width": "160px"})
        solara.Text("Hover a bus for its details.", classes=["dipi-note"])


@solara.component
def KpiTiles() -> None:
    base, snap = baseline.value, snapshot.value
    reps = current_replications()
    same_hour = base is not None and (reps is not None or base.snap.hour == snap.hour)
    tiles = views.kpi_tiles(snap.summary, base.summary if same_hour else None,
                            reps.delta if reps is not None else None)
    parts = []
    for t in tiles:
        delta = ""
        if t.delta:
            what = f"{t.interval} over {reps.n} pairs" if t.interval and reps else \
                f"vs baseline ({t.baseline})"
            delta = f'<div class="delta {t.trend}">{html.escape(f"{t.delta} {what}")}</div>'
        parts.append(f'<div class="dipi-kpi" data-key="{t.key}" data-trend="{t.trend}">'
                     f'<div class="label">{html.escape(t.label)}</div>'
                     f'<div class="value">{html.escape(t.value)}</div>{delta}'
                     f'<div class="unit">{html.escape(t.unit)}</div></div>')
    solara.HTML(unsafe_innerHTML="".join(parts), classes=["dipi-kpis"])


@solara.component
def SeriesChart() -> None:
    snap, base, reps = snapshot.value, baseline.value, current_replications()
    last = charts.RANGES[time_range.value]
    option = solara.use_memo(lambda: charts.series_option(snap, base, reps, last),
                             [snap, base, reps, last])
    with solara.Row(gap="12px", style={"align-items": "center"}):
        solara.Text("Time range", classes=["dipi-note"])
        solara.ToggleButtonsSingle(value=time_range, values=list(charts.RANGES), dense=True,
                                   classes=["dipi-range"])
        solara.Text("Hover for values; drag the slider or scroll on a chart to zoom.",
                    classes=["dipi-note"])
    with solara.Div(classes=["dipi-series"]):
        solara.FigureEcharts(option, attributes={"style": "height: 520px; width: 100%;"},
                             responsive=True)


@solara.component
def LedgerPanel(runner: ModelRunner) -> None:
    ledger = snapshot.value.ledger
    with solara.Row(gap="12px", style={"align-items": "center"}):
        solara.Button("Verify", color="primary", icon_name="mdi-shield-check",
                      disabled=ledger.status != "on" or not ledger.can_verify or playing.value,
                      on_click=lambda: verify(runner))
        if ledger.status == "off":
            status = "Ledger off: this model keeps no ledger."
        elif ledger.status == "error":
            status = ledger.message
        else:
            status = (f"{ledger.total_blocks} blocks on DU1 (scheduling), JY1 "
                      "(transactions) and LH1 (credit); newest first:")
        solara.Text(status, classes=["dipi-note", "dipi-ledger-status"])
    result = current_verify()
    if result:
        ok, text = result
        (solara.Success if ok else solara.Error)(text, classes=["dipi-verify"])
    rows = views.block_rows(ledger)
    if rows:
        head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values())
                       + "</tr>" for r in rows)
        solara.HTML(unsafe_innerHTML=f'<table class="dipi-blocks"><tr>{head}</tr>{body}</table>',
                    classes=["dipi-blocks-box"])


@solara.component
def FrameDrawn(runner: ModelRunner) -> None:
    """Tells the Play loop that the hour on screen has been drawn (after the render)."""
    snap = snapshot.value
    solara.use_effect(lambda: runner.mark_drawn((snap.build, snap.hour)), [snap])


@solara.component
def Dashboard(views_: dict[str, figures.FigureView], runner: ModelRunner) -> None:
    with solara.Column(gap="12px"):
        Header()
        with solara.Card("Grid: this hour per bus, P2P flow on the lines", margin=0):
            GridZoom()
            GridFigure(views_["grid"])
        with solara.Card("Run so far", margin=0):
            KpiTiles()
        with solara.Card("Hourly series", margin=0):
            SeriesChart()
        with solara.Card("Credit and block production", margin=0):
            FigureImage(views_["credit"], "credit")
        with solara.Card("Ledger", margin=0):
            LedgerPanel(runner)
        FrameDrawn(runner)


@solara.component
def Page() -> None:
    runner = solara.use_memo(ModelRunner, [])
    uploads = solara.use_memo(Uploads, [])
    views_ = solara.use_memo(figures.make_views, [])

    def first_build() -> Callable[[], None]:
        if runner.model is None:
            apply_controls(runner)

        def end() -> None:  # the session ends: release its model, thread and files
            runner.close()
            uploads.close()
        return end

    solara.use_effect(first_build, [])
    solara.Title("dipi_abm · P2P energy market under blockchain credit")
    solara.Style(CSS)
    with solara.AppBar():
        solara.AppBarTitle("dipi_abm · P2P energy trading under blockchain credit (DIPI / POCA)")
    with solara.Div(classes=["dipi-layout"]):
        with solara.Column(gap="12px", classes=["dipi-side"]):
            RunControls(runner)
            Compare()
            Parameters(uploads)
            Downloads(runner)
        with solara.Div(classes=["dipi-main"]):
            Main(runner, views_)


@solara.component
def Main(runner: ModelRunner, views_: dict[str, figures.FigureView]) -> None:
    if not has_model.value:
        with solara.Column(style={"padding": "24px"}):
            if notice.value:
                solara.Error(notice.value[1], classes=["dipi-notice"])
            else:
                solara.Text("Building the model…")
                solara.ProgressLinear(True)
        return
    Dashboard(views_, runner)
