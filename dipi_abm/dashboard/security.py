"""What keeps another web page from driving the dashboard (docs/robustness.md).

- :class:`SameOriginMiddleware` refuses a websocket (the page's only channel to
  its model) whose ``Origin`` is not the page's own, a ``null`` or missing one
  included, and any request whose ``Host`` is not a name of this server (DNS
  rebinding). ``python -m dipi_abm.dashboard.security run APP ...`` is
  ``solara run`` with it installed (what ``dipi-abm app`` starts).
- :func:`check_page_values`: a page sets no file-system path; the only file a
  model may read is one the user dropped (:class:`Uploads`).
- :class:`Uploads`: dropped files are capped in size, kept in one folder per
  session, and deleted when refused, replaced, or when the session ends.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .. import config as cfg
from ..errors import ConfigError, one_line
from ..physics.grid import BUILTIN_GRIDS

#: Largest grid file a page may drop (a 20,000-bus GraphML file is about 5 MB).
MAX_UPLOAD_BYTES = 16 * 2**20
#: Host names that always mean this machine.
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]],
                   Awaitable[None]]


class SameOriginMiddleware:
    """ASGI middleware: only the page this server sends may open its websocket.

    ``host``: the address the server listens on; a wildcard (``0.0.0.0``, ``::``)
    accepts any ``Host`` name, a specific address only itself and the local names.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1") -> None:
        self.app = app
        wildcard = host in ("", "0.0.0.0", "::")
        self.names = None if wildcard else LOCAL_NAMES | {host.strip("[]").lower()}

    def refusal(self, scope: Scope) -> str | None:
        """Why ``scope`` is refused, or None."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        name = urlsplit(f"//{host}").hostname or ""
        if self.names is not None and name.lower() not in self.names:
            return f"Host {host!r} is not this server"
        if scope["type"] != "websocket" and scope.get("method", "GET") in ("GET", "HEAD"):
            return None
        origin = headers.get("origin")
        if origin is None:
            return None if scope["type"] != "websocket" else "no Origin"
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
            return f"Origin {origin!r} is not {host!r}"
        return None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] not in ("http", "websocket") or (why := self.refusal(scope)) is None:
            await self.app(scope, receive, send)
            return
        print(f"dipi-abm: refused a {scope['type']} request: {one_line(why, 200)}",
              file=sys.stderr)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"refused: not same-origin\n"})


def check_page_values(values: Mapping[str, Any], uploaded: str | None = None) -> None:
    """Refuse a value the page may not set: a free-text key (a file-system path such as
    ``grid``, ``ledger`` or any later file key) other than a built-in grid, the empty
    default, or the file the user dropped (``uploaded``)."""
    for key, value in values.items():
        p = cfg.param(key)
        if p.kind is not str or p.choices is not None or p.combine is not None:
            continue
        if value in ("", p.default, uploaded) or (key == "grid" and value in BUILTIN_GRIDS):
            continue
        raise ConfigError(f"{key} = {one_line(value, 60)!r}: the dashboard sets no file or "
                          "path; drop a grid file instead, or use dipi-abm run")


class Uploads:
    """One session's dropped files, each in its own temporary folder: a refused file is
    deleted at once, an accepted one when the next is accepted or the session ends."""

    _live: set[Path] = set()  # every session's folders, removed at exit at the latest

    def __init__(self) -> None:
        self.folders: set[Path] = set()

    def save(self, name: str, file_obj: BinaryIO, size: int | None = None) -> Path:
        """Save a dropped file under its own (safe) name; raises ConfigError (and keeps
        nothing) above :data:`MAX_UPLOAD_BYTES`."""
        limit = f"{MAX_UPLOAD_BYTES // 2**20} MiB"
        if size is not None and size > MAX_UPLOAD_BYTES:
            raise ConfigError(f"{one_line(name, 80)}: {size} bytes, more than the {limit} a "
                              "dropped grid file may have")
        data = file_obj.read(MAX_UPLOAD_BYTES + 1)  # the browser's size is only a claim
        if len(data) > MAX_UPLOAD_BYTES:
            raise ConfigError(f"{one_line(name, 80)}: more than the {limit} a dropped grid "
                              "file may have")
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".")[:100]
        folder = Path(tempfile.mkdtemp(prefix="dipi-grid-"))
        self.folders.add(folder)
        Uploads._live.add(folder)
        path = folder / (safe or "grid.graphml")
        path.write_bytes(data)
        return path

    def keep_only(self, path: Path | None) -> None:
        """Delete every saved file but ``path`` (None: all of them)."""
        for folder in list(self.folders):
            if path is None or folder != path.parent:
                shutil.rmtree(folder, ignore_errors=True)
                self.folders.discard(folder)
                Uploads._live.discard(folder)

    def close(self) -> None:
        """The session ended."""
        self.keep_only(None)


@atexit.register
def _remove_left_uploads() -> None:
    for folder in list(Uploads._live):
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """``solara run`` with :class:`SameOriginMiddleware` in front of the server."""
    args = sys.argv[1:] if argv is None else argv
    host = args[args.index("--host") + 1] if "--host" in args else "localhost"
    # Solara loads the page when its server module is imported: name it first, as
    # `solara run` would, then put the check in front before the server starts.
    os.environ["SOLARA_APP"] = args[args.index("run") + 1]
    import solara.__main__ as solara_cli
    from solara.server.starlette import app

    app.add_middleware(SameOriginMiddleware, host=host)
    solara_cli.cli(args)


if __name__ == "__main__":
    main()
