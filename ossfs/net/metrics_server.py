"""The optional Prometheus endpoint of a mount (``--metrics-address HOST:PORT``).

Responsibility: listen on one address and answer ``GET /metrics`` with the text a ``render``
callable gives (the mount passes its counters in the Prometheus text exposition format, made by
`ossfs.obs.stats.format_prometheus`), from a daemon thread of the standard library's HTTP server.
The socket is bound before the mount daemonizes (so a taken port is a one-line start-up error)
and the forked daemon inherits it.

Deliberately not here: what the counters are and how they are written (`ossfs.obs.stats`),
authentication or TLS (bind it to 127.0.0.1, or put a proxy in front), and any other path than
``/metrics`` (and ``/`` pointing to it).
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
from collections.abc import Callable
from typing import Final

from ossfs.core.errors import UsageError

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPv6]:PORT`` too) -> (host, port); `UsageError` if malformed."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"invalid --metrics-address {text!r}: use HOST:PORT, e.g. 127.0.0.1:9464")
    return host, int(port)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    render: Callable[[], str] | None = None


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        render = self.server.render
        if path == "/metrics" and render is not None:
            body = render().encode()
            self._answer(200, CONTENT_TYPE, body)
        elif path == "/":
            self._answer(200, "text/plain; charset=utf-8", b"ossfs metrics: GET /metrics\n")
        else:
            self._answer(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics: " + format, *args)


class MetricsServer:
    """A bound (not yet serving) metrics endpoint. `start` serves from a daemon thread."""

    def __init__(self, host: str, port: int) -> None:
        """Bind now; `UsageError` if the address cannot be listened on."""
        try:
            server_class = _Server6 if ":" in host else _Server
            self._server: _Server = server_class((host, port), _Handler)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on --metrics-address {host}:{port} ({exc.strerror}); "
                "choose a free port"
            ) from None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): the port chosen by the system when 0 was asked for."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self, render: Callable[[], str]) -> None:
        """Serve ``render()`` (called per request, from the server's threads) at /metrics."""
        self._server.render = render
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()
        log.info("serving metrics at http://%s:%d/metrics", *self.address)

    def close(self) -> None:
        """Stop serving (if started) and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
