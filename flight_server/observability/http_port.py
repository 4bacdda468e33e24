"""The HTTP side port: /health/live, /health/ready and /metrics for orchestrators and Prometheus."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HealthServer:
    """Serves liveness, readiness (a callable returning (ready, details)) and Prometheus text."""

    def __init__(self, host: str, port: int, ready: Callable[[], tuple[bool, dict]],
                 metrics: Callable[[], bytes], live: Callable[[], tuple[bool, dict]] | None = None):
        ready_check, render = ready, metrics
        live_check = live or (lambda: (True, {}))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server naming
                path = self.path.split("?", 1)[0]
                if path == "/health/live":
                    ok, details = live_check()
                    body = json.dumps({"status": "alive" if ok else "failing", **details}).encode()
                    self._send(200 if ok else 503, "application/json", body)
                elif path == "/health/ready":
                    ok, details = ready_check()
                    body = json.dumps({"status": "ready" if ok else "not ready", **details}).encode()
                    self._send(200 if ok else 503, "application/json", body)
                elif path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4; charset=utf-8", render())
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http-port", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
