"""A local HTTP receiver that records what it is sent: the fake endpoint the notification tests use.

It answers any POST on ``127.0.0.1`` (a webhook path, or Telegram's ``/bot<token>/sendMessage``)
and keeps each request's path and JSON body.  ``fail_first`` answers the first N requests with
``fail_status`` (and ``retry_after`` as the ``Retry-After`` header when given), so retries can be
tested against real HTTP.  It runs the standard library's threading server in a thread, so it
serves whatever event loop (or none) the client runs in.  Also handy to try ``[notify]`` out::

    python -m bot.notify.receiver        # prints the URL, then every notification it receives
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    body: Any          # the parsed JSON (None if the body was not JSON)
    status: int        # what the receiver answered


class NotificationReceiver:
    """``with NotificationReceiver() as r: ... r.url ... r.calls``."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503, retry_after: float | None = None,
                 echo: bool = False) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.echo = echo
        self.calls: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="notification-receiver",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies received (on ``path`` only, if given), answered or not."""
        with self._lock:
            return [c.body for c in self.calls if path is None or c.path == path]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Block until at least ``count`` requests came (or the timeout); the calls so far."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.calls) >= count:
                    return list(self.calls)
            time.sleep(0.01)
        with self._lock:
            return list(self.calls)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with receiver._lock:
                    failing = len(receiver.calls) < receiver.fail_first
                    status = receiver.fail_status if failing else 200
                    receiver.calls.append(Received(self.path, body, status))
                if receiver.echo:
                    print(self.path, json.dumps(body), flush=True)
                answer = json.dumps({"ok": not failing}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                if failing and receiver.retry_after is not None:
                    self.send_header("Retry-After", f"{receiver.retry_after:g}")
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:   # quiet: the calls are recorded
                pass

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def main() -> None:
    with NotificationReceiver(echo=True) as r:
        print(f"[notify] webhook_url = \"{r.url}/hook\"   (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()


__all__ = ["NotificationReceiver", "Received"]
