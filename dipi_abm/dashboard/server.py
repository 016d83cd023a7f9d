"""Serve the dashboard: ``dipi-abm app`` runs ``solara run dipi_abm/app.py`` behind the
same-origin check of :mod:`dipi_abm.dashboard.security`."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ..errors import ConfigError

APP_FILE = Path(__file__).resolve().parent.parent / "app.py"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def solara_command(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                   open_browser: bool = False) -> list[str]:
    """The ``solara run`` command line that serves the page (production mode), with the
    same-origin check installed."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port = {port!r}: must be an integer in [0, 65535]")
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"host = {host!r}: must be a host name or address")
    cmd = [sys.executable, "-m", "dipi_abm.dashboard.security", "run", str(APP_FILE),
           "--host", host, "--port", str(port), "--production"]
    if not open_browser:
        cmd.append("--no-open")
    return cmd


def server_env() -> dict[str, str]:
    """The environment of the server: Solara's telemetry off (the machines are offline),
    and, unless set, two malloc arenas: each session's model thread otherwise gets its own
    arena, which keeps the memory of its closed session (measured: docs/robustness.md)."""
    return {"MALLOC_ARENA_MAX": "2", **os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False"}


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
          open_browser: bool = False) -> int:
    """Run the dashboard server until interrupted; returns its exit status.

    Raises ConfigError when Solara (a dependency of the package) is missing, or the
    host or port is invalid.
    """
    if importlib.util.find_spec("solara") is None:
        raise ConfigError("the dashboard needs Solara, which is installed with dipi-abm: "
                          "reinstall it (pip install dipi-abm)")
    cmd = solara_command(host, port, open_browser=open_browser)
    where = f"http://{host}:{port}/" if port else f"a free port of {host} (see below)"
    print(f"dipi-abm: dashboard on {where} (Ctrl-C stops it)", file=sys.stderr)
    proc = subprocess.Popen(cmd, env=server_env())
    restore = None
    if threading.current_thread() is threading.main_thread():
        # A plain `kill` of dipi-abm must not orphan the server.
        restore = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the server got the same Ctrl-C and stops by itself
        return 0
    finally:
        _stop(proc)
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
