"""The interactive dashboard (Solara): ``dipi-abm app`` or ``solara run dipi_abm/app.py``.

The sidebar holds the run buttons (Reset rebuilds the model from the
controls, Step and Play advance hours) and the parameter controls, built
from the scenario registry (:mod:`dipi_abm.dashboard.controls`). A value the
registry refuses is shown with its one-line message and the model keeps its
previous settings. The main area shows the grid with the parties and this
hour's P2P trades, the summary KPIs, the hourly series, credit and block
production, and the ledger with a Verify button.

Like a Mesa ``SolaraViz`` page, but with its own model factory: Mesa 3.3's
Reset calls the model class with the raw control values and would crash on
a refused value, and its controls cannot express the registry's ranges.
"""

from __future__ import annotations

import html
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import solara
import solara.lab

from dipi_abm.dashboard import controls as ctl
from dipi_abm.dashboard import views
from dipi_abm.dashboard.runner import ModelRunner
from dipi_abm.dashboard.server import serve
from dipi_abm.errors import ConfigError

__all__ = ["Page", "serve"]

log = logging.getLogger(__name__)

#: Shortest time between two frames while playing, seconds.
PLAY_INTERVAL_S = 0.1
#: Choices of hours per Step click / Play frame.
HOURS_PER_FRAME = (1, 6, 24)

# Session state: Solara keeps one value of each per browser session.
entries = solara.reactive(ctl.default_values())
extra_keys = solara.reactive("")
uploaded = solara.reactive(None)  # (file name, saved path) of a dropped grid file
notice = solara.reactive(None)  # (level, text): a refused input or a failed step
snapshot = solara.reactive(None)  # views.Snapshot of the hour on screen
playing = solara.reactive(False)
hours_per_frame = solara.reactive(1)
verify_result = solara.reactive(None)  # (ok, text) from the last Verify
has_model = solara.lab.computed(lambda: snapshot.value is not None)

CSS = """
.dipi-hour { font-size: 1.35rem; font-weight: 600; }
.dipi-headline { color: #555; font-size: 0.9rem; }
.dipi-note { display: block; }
.dipi-group { display: block; font-weight: 600; font-size: 0.8rem; text-transform: uppercase;
              letter-spacing: 0.04em; color: #546e7a; margin: 10px 0 2px 0; }
.dipi-kpis { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 8px; }
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
"""


# ------------------------------------------------------------------------------ actions
def apply_controls(runner: ModelRunner) -> None:
    """Reset: rebuild the model from the controls, or say why not and keep the old one."""
    playing.set(False)
    grid_file = uploaded.value[1] if uploaded.value else None
    try:
        values = ctl.scenario_from_controls(entries.value, extra=extra_keys.value,
                                            uploaded_grid=grid_file)
        snap = runner.rebuild(values)
    except ConfigError as exc:
        kept = " The model keeps its previous settings." if runner.model is not None else ""
        notice.set(("error", f"Not applied: {_named(exc)}.{kept}"))
        return
    notice.set(None)
    verify_result.set(None)
    snapshot.set(snap)


def advance(runner: ModelRunner, hours: int) -> None:
    """Step: advance ``hours`` hours and show the new hour."""
    if runner.model is None:
        return
    try:
        snap = runner.step(hours)
    except Exception as exc:  # a failing step must not take the page down
        log.exception("step failed")
        playing.set(False)
        notice.set(("error", f"The step failed: {type(exc).__name__}: {exc}"))
        return
    if snap.build == runner.build:  # a Reset meanwhile replaced the model: drop the old hour
        snapshot.set(snap)


def verify(runner: ModelRunner) -> None:
    verify_result.set(runner.verify())


def _named(exc: Exception) -> str:
    """A ConfigError's message with an uploaded grid's temporary path shown as its name."""
    text = str(exc)
    if uploaded.value:
        name, path = uploaded.value
        text = text.replace(str(path), name)
    return text


def set_entry(key: str, value: Any) -> None:
    entries.set({**entries.value, key: value})


def save_upload(name: str, data: bytes) -> Path:
    """Save a dropped grid file in a new temporary folder, under its own (safe) name:
    the suffix tells GraphML from an edge list."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".") or "grid.graphml"
    path = Path(tempfile.mkdtemp(prefix="dipi-grid-")) / safe
    path.write_bytes(data)
    return path


def on_grid_file(info: dict[str, Any]) -> None:
    """A grid file was dropped: save it, check it now, and select it."""
    from dipi_abm.physics.grid import build_grid

    name = str(info.get("name") or "grid.graphml")
    data = info.get("data")
    if data is None:
        data = info["file_obj"].read()
    path = save_upload(name, data)
    try:
        grid = build_grid(str(path))
    except ConfigError as exc:
        notice.set(("error", f"Grid file refused: {str(exc).replace(str(path), name)}"))
        return
    uploaded.set((name, str(path)))
    set_entry("grid", ctl.UPLOADED)
    notice.set(("info", f"Grid file '{name}' read: {grid.n_buses} buses. "
                        "Press Reset to build the model on it."))


# ------------------------------------------------------------------------------ sidebar
@solara.component
def RunControls(runner: ModelRunner) -> None:
    snap = snapshot.value
    running = snap is not None and snap.running

    def play_loop() -> None:
        while playing.value:
            start = time.perf_counter()
            if not runner.running:
                break
            advance(runner, hours_per_frame.value)
            time.sleep(max(0.0, PLAY_INTERVAL_S - (time.perf_counter() - start)))
        playing.set(False)

    solara.lab.use_task(play_loop, dependencies=[playing.value], prefer_threaded=True)

    with solara.Card("Run", margin=0, classes=["dipi-run"]):
        solara.Text(views.hour_label(snap) if snap else "No model yet", classes=["dipi-hour"])
        with solara.Row(gap="8px"):
            solara.Button("Reset", color="primary", icon_name="mdi-restart",
                          on_click=lambda: apply_controls(runner))
            solara.Button("Pause" if playing.value else "Play", color="primary",
                          icon_name="mdi-pause" if playing.value else "mdi-play",
                          disabled=not running,
                          on_click=lambda: playing.set(not playing.value))
            solara.Button("Step", color="primary", icon_name="mdi-step-forward",
                          disabled=playing.value or not running,
                          on_click=lambda: advance(runner, hours_per_frame.value))
        solara.ToggleButtonsSingle(value=hours_per_frame, values=list(HOURS_PER_FRAME),
                                   dense=True)
        solara.Text("hours per Step / Play frame", classes=["dipi-note"])
        if notice.value:
            level, text = notice.value
            if level == "error":
                solara.Error(text, classes=["dipi-notice"])
            else:
                solara.Info(text, classes=["dipi-notice"])


@solara.component
def ControlField(control: ctl.Control, value: Any, error: str | None) -> None:
    def on_value(v: Any, key: str = control.key) -> None:
        set_entry(key, v)

    if control.widget == "select":
        choices = list(control.choices)
        if control.key == "grid" and uploaded.value:
            choices.append(ctl.UPLOADED)
        solara.Select(control.label, values=choices, value=value, on_value=on_value)
    elif control.widget == "checkbox":
        solara.Checkbox(label=control.label, value=bool(value), on_value=on_value)
    else:
        solara.InputText(control.label, value=str(value), on_value=on_value,
                         error=error or False, message=control.hint)


@solara.component
def Parameters() -> None:
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
                                on_file=on_grid_file, lazy=False)
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
def FigureImage(view: views.FigureView, name: str) -> None:
    snap = snapshot.value
    data = solara.use_memo(lambda: view.render(snap), [snap, view])
    solara.Image(data, width="100%", classes=["dipi-figure", f"dipi-{name}"])


@solara.component
def KpiTiles() -> None:
    tiles = "".join(
        f'<div class="dipi-kpi"><div class="label">{html.escape(label)}</div>'
        f'<div class="value">{html.escape(value)}</div>'
        f'<div class="unit">{html.escape(unit)}</div></div>'
        for label, value, unit in views.kpi_tiles(snapshot.value.summary)
    )
    solara.HTML(unsafe_innerHTML=tiles, classes=["dipi-kpis"])


@solara.component
def LedgerPanel(runner: ModelRunner) -> None:
    ledger = snapshot.value.ledger
    with solara.Row(gap="12px", style={"align-items": "center"}):
        solara.Button("Verify", color="primary", icon_name="mdi-shield-check",
                      disabled=ledger.status != "on" or not ledger.can_verify,
                      on_click=lambda: verify(runner))
        if ledger.status == "off":
            status = "Ledger off: this model keeps no ledger."
        elif ledger.status == "error":
            status = ledger.message
        else:
            status = (f"{ledger.total_blocks} blocks on DU1 (scheduling), JY1 "
                      "(transactions) and LH1 (credit); newest first:")
        solara.Text(status, classes=["dipi-note", "dipi-ledger-status"])
    if verify_result.value:
        ok, text = verify_result.value
        (solara.Success if ok else solara.Error)(text, classes=["dipi-verify"])
    rows = views.block_rows(ledger)
    if rows:
        head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values())
                       + "</tr>" for r in rows)
        solara.HTML(unsafe_innerHTML=f'<table class="dipi-blocks"><tr>{head}</tr>{body}</table>',
                    classes=["dipi-blocks-box"])


@solara.component
def Dashboard(figures: dict[str, views.FigureView], runner: ModelRunner) -> None:
    with solara.Column(gap="12px", style={"padding": "8px 16px"}):
        Header()
        with solara.Columns([3, 2], gutters_dense=True):
            with solara.Card("Grid and this hour's P2P trades", margin=0):
                FigureImage(figures["network"], "network")
            with solara.Card("Run so far", margin=0):
                KpiTiles()
        with solara.Card("Hourly series", margin=0):
            FigureImage(figures["timeseries"], "timeseries")
        with solara.Card("Credit and block production", margin=0):
            FigureImage(figures["credit"], "credit")
        with solara.Card("Ledger", margin=0):
            LedgerPanel(runner)


@solara.component
def Page() -> None:
    runner = solara.use_memo(ModelRunner, [])
    figures = solara.use_memo(views.make_views, [])

    def first_build() -> None:
        if runner.model is None:
            apply_controls(runner)

    solara.use_effect(first_build, [])
    solara.Title("dipi_abm · P2P energy market under blockchain credit")
    solara.Style(CSS)
    with solara.AppBar():
        solara.AppBarTitle("dipi_abm · P2P energy trading under blockchain credit (DIPI / POCA)")
    with solara.Sidebar():
        with solara.Column(gap="12px"):
            RunControls(runner)
            Parameters()
    Main(runner, figures)


@solara.component
def Main(runner: ModelRunner, figures: dict[str, views.FigureView]) -> None:
    if not has_model.value:
        with solara.Column(style={"padding": "24px"}):
            if notice.value:
                solara.Error(notice.value[1], classes=["dipi-notice"])
            else:
                solara.Text("Building the model…")
                solara.ProgressLinear(True)
        return
    Dashboard(figures, runner)
