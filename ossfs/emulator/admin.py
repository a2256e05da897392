"""The emulator's admin API under ``/_emulator/`` (bucket names cannot start with ``_``).

``GET/PUT/DELETE /_emulator/faults`` (JSON `FaultSettings`; PUT changes only the fields given),
``GET /_emulator/stats`` (request log snapshot), ``POST /_emulator/stats/reset``. Unauthenticated:
the emulator is a local test tool.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

from ossfs.emulator.faults import FaultSettings

if TYPE_CHECKING:
    from ossfs.emulator.httpbase import BaseHandler, Request

PREFIX: Final = "/_emulator/"


def _json(handler: BaseHandler, status: int, value: object) -> None:
    body = (json.dumps(value, sort_keys=True) + "\n").encode()
    handler.respond(status, [("Content-Type", "application/json")], body)


def handle(handler: BaseHandler, req: Request, body: bytes) -> None:
    """Answer one admin request."""
    ctx = handler.ctx
    path = req.raw_path[len(PREFIX) :].rstrip("/")
    method = req.method
    if path == "faults":
        if method == "GET":
            _json(handler, 200, ctx.faults.settings.to_json())
            return
        if method == "DELETE":
            ctx.faults.clear()
            _json(handler, 200, ctx.faults.settings.to_json())
            return
        if method in ("PUT", "POST"):
            try:
                data = json.loads(body or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                new = FaultSettings.from_json(data, ctx.faults.settings)
            except ValueError as exc:
                _json(handler, 400, {"error": str(exc)})
                return
            ctx.faults.set(new)
            _json(handler, 200, new.to_json())
            return
    elif path == "stats" and method == "GET":
        _json(handler, 200, ctx.log.snapshot())
        return
    elif path == "stats/reset" and method == "POST":
        ctx.log.clear()
        _json(handler, 200, {"ok": True})
        return
    _json(handler, 404, {"error": f"no admin endpoint {method} {req.raw_path}"})
