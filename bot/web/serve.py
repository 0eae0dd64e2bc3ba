"""Serve the dashboard: ``bot serve --db PATH [--host 127.0.0.1] [--port 8080]``, or inside the daemon (``[api]``).

Binding rules: loopback by default; any other address needs ``BOT_API_TOKEN`` in the environment (start-up is
refused otherwise).  Without a token the app is read-only; with one, the operator commands accept it as a bearer
token.  The token is read from the environment only, and never logged, stored or echoed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError, DataError

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

TOKEN_ENV = "BOT_API_TOKEN"
MIN_TOKEN_CHARS = 16
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def api_token(environ: dict[str, str] | None = None) -> str | None:
    """The operator token from ``BOT_API_TOKEN`` (None when unset or empty); too short a token is refused."""
    value = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    if not value:
        return None
    if len(value) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters (it is shorter)")
    return value


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if host not in LOOPBACK and token is None:
        raise ConfigError(f"binding the dashboard to {host} needs {TOKEN_ENV} set in the environment "
                          "(only 127.0.0.1, ::1 or localhost go without one)")


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is one clear ConfigError (uvicorn would exit)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def uvicorn_server(app: object, embedded: bool = False) -> Any:
    """A uvicorn server for ``app`` logging through the bot's logging, without an access log.  ``embedded``:
    inside the daemon, whose own SIGINT/SIGTERM handlers stay in charge (uvicorn would take the signals)."""
    import uvicorn

    class EmbeddedServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    return (EmbeddedServer if embedded else uvicorn.Server)(config)


class BackgroundDashboard:
    """The dashboard served by the daemon (``[api] enabled = true``) as a task of its event loop."""

    def __init__(self, db: str | Path, host: str, port: int, token: str | None) -> None:
        from bot.web.app import create_app

        check_bind(host, token)
        self._sock = listen(host, port)
        self.address = self._sock.getsockname()
        self._server = uvicorn_server(create_app(db, token), embedded=True)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BackgroundDashboard:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="dashboard")
        log.info("dashboard on http://%s:%d/ (operator controls %s)", self.address[0], self.address[1],
                 "on" if self._server.config.app.state.controls else "off")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("dashboard did not stop in time")
            except Exception:   # a failed web server must not mask how the daemon ended
                log.exception("dashboard stopped with an error")
        self._sock.close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, help="SQLite trade log to show (opened read-only)")
    p.add_argument("--host", default="127.0.0.1",
                   help=f"address to listen on (default 127.0.0.1; anything else needs {TOKEN_ENV})")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                   help="how often the live updates look for a new bar (default 1 s)")


def run(args: argparse.Namespace, sweep_app: Callable[[Path], FastAPI] | None = None) -> int:
    """Entry point of ``bot serve``; ``sweep_app`` builds the app when ``--db`` is a sweep results file
    (:mod:`bot.sweep.dashboard`, handed in by the CLI: bot.web never imports bot.sweep, which runs backtests)."""
    from bot.web.app import create_app

    token = api_token()
    check_bind(args.host, token)
    if not (0 < args.port < 65536):
        raise ConfigError(f"--port must be 1..65535, got {args.port}")
    if args.poll <= 0:
        raise ConfigError(f"--poll must be positive, got {args.poll}")
    db = Path(args.db)
    if not db.is_file():
        raise DataError(f"no trade log at {db}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sock = listen(args.host, args.port)
    if sweep_app is not None:   # a `bot sweep` results file: its own page and API, nothing to control
        server = uvicorn_server(sweep_app(db))
        print(f"sweep results of {db} on http://{args.host}:{args.port}/ (API docs /docs)", flush=True)
    else:
        server = uvicorn_server(create_app(db, token, poll_s=args.poll))
        print(f"dashboard of {db} on http://{args.host}:{args.port}/ (API docs /docs); operator controls "
              f"{'on' if token else 'off (no ' + TOKEN_ENV + ')'}", flush=True)
    with sock:
        asyncio.run(server.serve(sockets=[sock]))
    return 0
