"""A partner service's webhook endpoint, as a partner would build it: a real HTTP server on
127.0.0.1 (in a thread), which verifies each request with the documented example
(clients/verify_webhook.py) and processes each event id once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from clients.verify_webhook import InvalidWebhook, verify


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class PartnerApp:
    secret: str
    now: Callable[[], float]  # the receiver's clock (the tests' frozen one, or real time)
    deliveries: list[Delivery] = field(default_factory=list)  # every request received
    events: list[dict[str, Any]] = field(default_factory=list)  # each event once, in order of arrival
    answer: int = 200
    # Set to hold each request after it was processed, before it is answered (a worker killed
    # while it waits for the answer).
    hold: threading.Event | None = None
    received: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/chiikipay"

    def event_ids(self) -> list[str]:
        return [e["id"] for e in self.events]

    def start(self) -> PartnerApp:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server calls it by this name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items()}
                try:
                    verify(app.secret, headers.get("X-Chiikipay-Timestamp", ""),
                           headers.get("X-Chiikipay-Signature", ""), body, now=app.now())
                except InvalidWebhook:
                    app.deliveries.append(Delivery(headers, body, False))
                    self._answer(400)
                    return
                app.deliveries.append(Delivery(headers, body, True))
                if app.answer < 300:
                    event = json.loads(body)
                    assert event["id"] == headers["X-Chiikipay-Event-Id"]
                    if event["id"] not in app.event_ids():  # deduplicated by the event id
                        app.events.append(event)
                app.received.set()
                if app.hold is not None:
                    app.hold.wait(30)
                self._answer(app.answer)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: connections to its port are refused until it starts again (on the same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
