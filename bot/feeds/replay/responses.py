"""The replay exchange's plain HTTP/1.1 answers: one JSON (or raw) body, then the connection closes.

Shared by the REST API (:mod:`bot.feeds.replay.server`) and the REST faults (:mod:`bot.feeds.replay.faults`).
"""

from __future__ import annotations

import email.utils
import http
import json

from websockets.datastructures import Headers
from websockets.http11 import Response


def json_response(status: int, body: object, extra_headers: tuple[tuple[str, str], ...] = (),
                  content_type: str = "application/json;charset=UTF-8") -> Response:
    """A ``Connection: close`` HTTP response with ``body`` as JSON (``bytes`` are sent as they are)."""
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":"), default=repr).encode()
    headers = Headers([
        ("Content-Type", content_type),
        ("Content-Length", str(len(data))),
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Connection", "close"),
        *extra_headers,
    ])
    return Response(status, http.HTTPStatus(status).phrase, headers, data)
