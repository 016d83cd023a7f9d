"""Memory of long-lived processes over time: the series behind docs/robustness.md.

``dashboard``: serves the page as ``dipi-abm app`` does and drives Debian's Chromium with
Playwright: ``--sessions`` sessions, each opened, rebuilt at ``--parties`` parties (10 %
DPGCs), stepped ``--steps`` hours and closed (the tab's own close, so the session ends);
then one session pressing Reset ``--resets`` times. After each it prints the resident
memory of the server's process tree (``/proc``), once it has stopped falling.

``sweep``: ``dipi-abm sweep --workers 1`` (all runs in one process) of ``--runs`` runs at
``--parties`` parties; the RSS of that process each time a run's file appears, and its
peak during that run (sampled every 50 ms).

    python benchmarks/bench_memory.py dashboard --sessions 12 --parties 10000 --resets 12
    python benchmarks/bench_memory.py sweep --runs 40 --parties 5000 --hours 24
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/lib/chromium/chromium"
PAGE_SIZE_MB = 4096 / 2**20


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_SIZE_MB
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def settled_rss(pid: int, quiet_s: float = 3.0, limit_s: float = 60.0) -> float:
    """RSS once it has not fallen for ``quiet_s`` seconds (a closed session is freed
    asynchronously), at most ``limit_s`` seconds."""
    low, since, start = tree_rss_mb(pid), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() - start < limit_s:
        time.sleep(0.25)
        now = tree_rss_mb(pid)
        if now < low - 0.5:
            low, since = now, time.monotonic()
    return tree_rss_mb(pid)


def dashboard(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    from dipi_abm import config as cfg
    from dipi_abm.dashboard.controls import control_for
    from dipi_abm.dashboard.server import server_env, solara_command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(solara_command("127.0.0.1", port), env=server_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    n_dpgc = args.parties // 10

    def fill(page, key: str, value: int) -> None:
        field = page.get_by_label(control_for(cfg.PARAMS_BY_NAME[key]).label, exact=True)
        field.fill(str(value))
        field.press("Enter")

    def reset(page, seed: int) -> None:
        fill(page, "seed", seed)
        page.get_by_role("button", name="Reset", exact=True).click()
        page.locator(".dipi-headline").filter(has_text=f"{args.parties} parties").wait_for()
        page.locator(".dipi-hour-main").filter(has_text="Hour 0 of").wait_for()

    def open_session(browser):
        context = browser.new_context(viewport={"width": 1500, "height": 2300})
        page = context.new_page()
        page.set_default_timeout(600_000)
        page.goto(url)
        page.locator("img.dipi-grid").wait_for()
        fill(page, "n_dpgc", n_dpgc)
        fill(page, "n_users", args.parties - n_dpgc)
        return context, page

    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        print(f"server up: {settled_rss(server.pid):.0f} MB", flush=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM,
                                         args=["--headless=new", "--no-sandbox"])
            for k in range(1, args.sessions + 1):
                context, page = open_session(browser)
                reset(page, k)
                for hour in range(1, args.steps + 1):
                    page.get_by_role("button", name="Step", exact=True).click()
                    page.locator(".dipi-hour-main").filter(has_text=f"Hour {hour} of").wait_for()
                page.close(run_before_unload=True)
                context.close()
                print(f"session {k} closed: {settled_rss(server.pid):.0f} MB", flush=True)
            context, page = open_session(browser)
            for k in range(1, args.resets + 1):
                reset(page, 100 + k)
                print(f"reset {k}: {settled_rss(server.pid):.0f} MB", flush=True)
            context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait()


def sweep(args: argparse.Namespace) -> None:
    n_dpgc = args.parties // 10
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "sweep.toml"
        spec.write_text(f'[sweep]\ndesign = "factorial"\nreplications = {args.runs}\n'
                        f'seed = 7\n[base]\nn_dpgc = {n_dpgc}\n'
                        f'n_users = {args.parties - n_dpgc}\nhours = {args.hours}\n'
                        '[factors]\nnatural_factor = [0.1]\n')
        out = Path(tmp) / "out"
        proc = subprocess.Popen([sys.executable, "-c", "from dipi_abm.cli import main; main()",
                                 "sweep", str(spec), "--out", str(out), "--workers", "1",
                                 "--quiet"])
        seen, peak = 0, 0.0
        while proc.poll() is None:
            peak = max(peak, tree_rss_mb(proc.pid))
            done = len(list((out / "runs").glob("*.parquet"))) if (out / "runs").exists() else 0
            if done > seen:
                seen = done
                print(f"run {done}: {tree_rss_mb(proc.pid):.0f} MB after, {peak:.0f} MB peak "
                      "during the run", flush=True)
                peak = 0.0
            time.sleep(0.05)
        print(f"exit {proc.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("dashboard")
    d.add_argument("--sessions", type=int, default=12)
    d.add_argument("--resets", type=int, default=12)
    d.add_argument("--steps", type=int, default=3)
    d.add_argument("--parties", type=int, default=10_000)
    s = sub.add_parser("sweep")
    s.add_argument("--runs", type=int, default=40)
    s.add_argument("--parties", type=int, default=5_000)
    s.add_argument("--hours", type=int, default=24)
    args = parser.parse_args()
    (dashboard if args.what == "dashboard" else sweep)(args)


if __name__ == "__main__":
    main()
