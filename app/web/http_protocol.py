"""How ``sam2voice serve`` runs uvicorn: the same options for the CLI, its workers and the tests.

uvicorn (0.54, h11) has a keep-alive timeout but none for a request's line and headers: a
client that sends ``GET / HTTP/1.1\\r\\nHost: x`` and then nothing holds its connection
forever (slowloris). :class:`GuardedH11Protocol` adds that deadline: from the moment a
connection opens, or the first byte of a next request on a kept-alive one, the request line
and headers must be complete within ``header_timeout_s``, or the connection gets 408 and is
closed. Once a request is in flight the body timeout of ``app.web.hardening`` takes over; once it
is upgraded to a websocket the socket's own hello and idle timeouts do.

Written here because uvicorn offers no such option; it subclasses uvicorn's own protocol
rather than replacing it, so parsing and everything else stay uvicorn's.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import Settings

TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"connection: close\r\ncontent-length: 38\r\n\r\nThe request headers took too long.\r\n\r\n")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request line and headers."""

    def __init__(self, *args: Any, header_timeout_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is None and not self._in_flight():
            self._arm()  # the first bytes of a next request on a kept-alive connection
        super().data_received(data)
        if self._in_flight() or self.transport.get_protocol() is not self:
            self._disarm()  # headers complete (a request runs), or upgraded to a websocket

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self or self._in_flight():
            return
        self.logger.info("closed a connection whose request headers took over %.0f s", self.header_timeout_s)
        self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that every server here uses."""
    return {  # a partial, not a class attribute: it travels to worker processes with the config
        "http": functools.partial(GuardedH11Protocol, header_timeout_s=settings.http_header_timeout_s),
        "ws_max_size": settings.ws_max_frame_bytes,  # beyond it the socket closes with 1009
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 16 * 1024,  # a longer request line or header block: 400
        "log_level": settings.log_level.lower(),
        # JSON logs: uvicorn's own loggers go through the root handler (app.logs) instead of its text config.
        **({"log_config": None} if settings.log_format == "json" else {}),
    }
