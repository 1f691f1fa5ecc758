"""Server hardening for ``sam2voice serve`` (issue 11): one pure ASGI middleware in front of the app.

- **Host check** on every HTTP request and websocket handshake: only the names the server is
  reached by (its bind address, and for a loopback bind ``localhost``, ``127.0.0.1`` and
  ``[::1]``, with the configured or actually bound port) plus ``SAM2VOICE_ALLOWED_ORIGINS``'
  hosts. Anything else is a DNS-rebinding attempt: 400 (a websocket handshake: 403).
- **Origin check** on the websocket handshake (always, when the browser sends one; ``null``
  is refused) and on state-changing requests (POST/PUT/PATCH/DELETE) that carry an Origin: 403.
- **Security headers** on every response: a Content-Security-Policy without inline script,
  X-Frame-Options DENY, X-Content-Type-Options nosniff, Referrer-Policy no-referrer.
- **Body cap**: a declared Content-Length over the limit gets 413 before anything is read; a
  chunked body is counted as it streams and cut off with 413 at the limit. A body that stops
  arriving half-way gets 408 after a timeout.
- **URL cap**: a path and query over 4 kB get 414 (a websocket handshake: 403).
- **422 without echo**: validation errors list where and what, never the ``input`` sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.settings import Settings

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
MAX_URL_BYTES = 4096  # the page's longest address is a few dozen bytes
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = ("default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'; object-src 'none'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


@dataclass(frozen=True)
class VoiceLimits:
    """Per-websocket limits (``app.web.voice_socket`` reads them from ``app.state.voice_limits``)."""

    max_text_frame_bytes: int = 8_000
    max_json_depth: int = 32
    frames_per_s: float = 100.0  # all frames; the page sends 10 audio frames a second
    frame_burst: int = 200
    turns_per_s: float = 1.0  # typed turns
    turn_burst: int = 5
    max_pending_turns: int = 3  # turns waiting or running per socket; more get "busy"
    hello_timeout_s: float = 15.0
    idle_timeout_s: float = 300.0
    flood_tolerance: int = 400  # frames dropped over the limit (refilling at frames_per_s) before closing (1008)
    flood_penalty_s: float = 10.0  # after such a close, the person's new sockets are refused this long


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_names(bind_host: str) -> set[str]:
    """The names a browser may use for a server bound to ``bind_host`` (without the port)."""
    host = bind_host.strip().lower()
    if _is_loopback(host):
        return set(LOOPBACK_NAMES)
    if host in ("0.0.0.0", "::", "[::]"):
        return set(LOOPBACK_NAMES)  # any interface: reach it by name via SAM2VOICE_ALLOWED_ORIGINS
    return {f"[{host}]" if ":" in host and not host.startswith("[") else host}


def _split_origins(value: str | list[str] | None) -> list[str]:
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [item.strip().rstrip("/").lower() for item in items if item.strip()]


class Hardening:
    """The ASGI middleware (see the module docstring)."""

    def __init__(self, app: Any, *, bind_host: str, bind_port: int, allowed_origins: list[str],
                 max_body_bytes: int = 64 * 1024, body_timeout_s: float = 10.0) -> None:
        self.app = app
        self.names = _host_names(bind_host)
        self.ports = {bind_port}
        self.extra_origins = set(_split_origins(allowed_origins))
        self.extra_hosts = {urlsplit(o).netloc for o in self.extra_origins if urlsplit(o).netloc}
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    # ------------------------------------------------------------------ checks
    def _allowed_hosts(self, scope: Scope) -> set[str]:
        ports = set(self.ports)
        server = scope.get("server")
        if server and server[1]:
            ports.add(int(server[1]))  # the port actually bound (tests and --port use free ones)
        hosts = {f"{name}:{port}" for name in self.names for port in ports}
        if 80 in ports:
            hosts |= self.names
        return hosts | self.extra_hosts

    def host_ok(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        return host in self._allowed_hosts(scope)

    def origin_ok(self, scope: Scope, origin: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.extra_origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.path or parts.query:
            return False  # "null", file:, chrome-extension:, ...
        return parts.netloc in self._allowed_hosts(scope)

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        origin = headers.get(b"origin")
        too_long = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") > MAX_URL_BYTES
        if scope["type"] == "websocket":
            if too_long:
                await self._refuse_websocket(receive, send, "URL too long")
            elif not self.host_ok(scope, headers):
                await self._refuse_websocket(receive, send, "bad host")
            elif origin is not None and not self.origin_ok(scope, origin.decode("latin-1")):
                await self._refuse_websocket(receive, send, "cross-origin")
            else:
                await self.app(scope, receive, send)
            return
        if too_long:
            await self._plain(send, 414, f"The address is longer than {MAX_URL_BYTES} bytes.")
            return
        if not self.host_ok(scope, headers):
            await self._plain(send, 400, "Bad Host header.")
            return
        if (origin is not None and scope.get("method", "GET").upper() in STATE_CHANGING
                and not self.origin_ok(scope, origin.decode("latin-1"))):
            await self._plain(send, 403, "Cross-origin request refused.")
            return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._plain(send, 400, "Bad Content-Length.")
                return
            if declared > self.max_body_bytes:
                await self._plain(send, 413, f"Request body over {self.max_body_bytes} bytes.")
                return
        await self._guarded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Any, send: Any) -> None:
        """Run the app with a counted, timed body and security headers on its response."""
        state = {"read": 0, "started": False, "refused": False, "body_done": False}

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return  # we already answered (413/408); the app's late response goes nowhere
            if message["type"] == "http.response.start":
                state["started"] = True
                message = {**message, "headers": [*_without_ours(message.get("headers", [])), *SECURITY_HEADERS]}
            await send(message)

        async def guarded_receive() -> Message:
            if state["refused"]:
                return {"type": "http.disconnect"}
            if state["body_done"]:
                return await receive()  # e.g. waiting for a disconnect while streaming: no timeout
            try:
                message: Message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except TimeoutError:
                await refuse(408, "The request body stopped arriving.")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.max_body_bytes:
                    await refuse(413, f"Request body over {self.max_body_bytes} bytes.")
                    return {"type": "http.disconnect"}
                state["body_done"] = not message.get("more_body", False)
            return message

        async def refuse(status: int, text: str) -> None:
            if not state["started"]:
                await self._plain(send, status, text)
            state["refused"] = True

        await self.app(scope, guarded_receive, guarded_send)

    @staticmethod
    async def _plain(send: Any, status: int, text: str) -> None:
        body = json.dumps({"detail": text}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"), *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _refuse_websocket(receive: Any, send: Any, why: str) -> None:
        """Refuse the handshake: closing before accept makes the server answer 403."""
        message = await receive()  # websocket.connect
        if message["type"] == "websocket.connect":
            log.info("websocket refused: %s", why)
            await send({"type": "websocket.close", "code": 1008})


def _without_ours(headers: Any) -> list[tuple[bytes, bytes]]:
    ours = {name for name, _ in SECURITY_HEADERS}
    return [(k, v) for k, v in headers if k.lower() not in ours]


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field and what is wrong, without echoing what was sent."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in errors]
    return JSONResponse({"detail": detail}, status_code=422)


def install_hardening(app: FastAPI, settings: Settings) -> None:
    """Put the protections in front of ``app`` (see the module docstring)."""
    app.add_middleware(Hardening, bind_host=settings.serve_host, bind_port=settings.serve_port,  # type: ignore[arg-type]
                       allowed_origins=settings.allowed_origin_list, max_body_bytes=settings.max_body_bytes,
                       body_timeout_s=settings.http_body_timeout_s)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.state.voice_limits = VoiceLimits(hello_timeout_s=settings.ws_hello_timeout_s,
                                         idle_timeout_s=settings.ws_idle_timeout_s)
