"""Who may connect and for how long: loopback unless told, a read deadline per request, a connection cap.

A receiver without a token accepts anything, so :func:`check_exposure` refuses a non-loopback address
without one unless the operator says so (``--insecure``).

uvicorn times out idle keep-alive connections only after a response; a client that connects and then
sends its headers or its body one byte at a time holds its connection (and the memory and file
descriptor behind it) for as long as it likes: 300 such clients stayed connected for 30 s. The
:class:`ConnectionGuard` closes them:

- every request must deliver its headers within ``read_timeout_s`` of the connection opening (or of
  the previous response on a kept-alive connection), and then its whole body within ``read_timeout_s``
  of its headers; a connection that misses either deadline is closed (the sender's OTLP exporter has
  given up by then: its default timeout is 10 s);
- at most ``max_connections`` are open at once; one more is closed as soon as it is accepted.

The deadlines span two layers: the header phase is only visible to the connection (the server's
protocol object, wrapped here), the body phase to the application (an ASGI middleware wrapping
``receive``). They meet through the connection's peer address, which uvicorn puts in the ASGI scope.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from otel_llm_cost import _config, _private_api
from otel_llm_cost._logging import log_once

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_READ_TIMEOUT_S",
    "ConnectionGuard",
    "check_exposure",
    "is_loopback",
]

_logger = logging.getLogger("otel_llm_cost.collector")

DEFAULT_READ_TIMEOUT_S: Final = 10.0
"""The OTLP exporters' default export timeout: a request slower than that was abandoned by its sender."""
DEFAULT_MAX_CONNECTIONS: Final = 512
"""Half of the usual 1,024 open-file limit, leaving room for the database, journal and logs."""

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


class _Connection:
    """One accepted connection's deadline (one timer, re-armed per read phase)."""

    __slots__ = ("_guard", "_timer", "transport")

    def __init__(self, guard: ConnectionGuard, transport: asyncio.BaseTransport) -> None:
        self._guard = guard
        self.transport = transport
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        self.disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.read_timeout_s, self._expired)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        self._guard.timed_out += 1
        log_once(
            _logger,
            "collector.read_timeout",
            logging.WARNING,
            "closed a connection that did not send its request within %g s (a slow or stalled client)",
            self._guard.read_timeout_s,
        )
        self.transport.close()


class ConnectionGuard:
    """Read deadlines and a connection cap for one server (see the module docstring).

    Args:
        read_timeout_s: Deadline for a request's headers, and then for its body.
        max_connections: Connections open at once; more are closed on accept.

    Raises:
        ValueError: A non-positive timeout or cap.

    Attributes:
        timed_out: Connections closed for missing a deadline.
        refused: Connections closed because ``max_connections`` were open.
    """

    def __init__(
        self,
        *,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if not read_timeout_s > 0:
            raise ValueError(f"read_timeout_s must be positive, got {read_timeout_s!r}")
        if max_connections <= 0:
            raise ValueError(f"max_connections must be positive, got {max_connections!r}")
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self.timed_out = 0
        self.refused = 0
        self._open: dict[tuple[str, int], _Connection] = {}

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        return len(self._open)

    def protocol_class(self) -> type[asyncio.Protocol]:
        """The server's HTTP protocol class, wrapped to apply the cap and the header deadline."""
        return _private_api.guarded_uvicorn_protocol(self._opened, self._closed)

    def middleware(self, app: _ASGIApp) -> _ASGIApp:
        """``app`` with the body deadline, and the header deadline lifted while a request is served."""

        async def guarded(scope: _Scope, receive: _Receive, send: _Send) -> None:
            client = scope.get("client")
            connection = self._open.get(tuple(client)) if scope["type"] == "http" and client else None
            if connection is None:
                await app(scope, receive, send)
                return
            connection.arm()  # headers are in: the body's deadline starts now

            async def receive_in_time() -> _Message:
                message = await receive()
                if message["type"] == "http.request" and not message.get("more_body", False):
                    connection.disarm()  # the whole body is in: the rest is the receiver's time
                return message

            async def send_and_rearm(message: _Message) -> None:
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    connection.arm()  # the next request on this connection has a deadline too

            await app(scope, receive_in_time, send_and_rearm)

        return guarded

    # -- called by the wrapped protocol --------------------------------------------------------

    def _opened(self, transport: asyncio.BaseTransport) -> bool:
        """A connection was accepted; False: refuse it (closed without being served)."""
        peer = _peer(transport)
        if len(self._open) >= self.max_connections or peer is None:
            self.refused += 1
            log_once(
                _logger,
                "collector.max_connections",
                logging.WARNING,
                "refused a connection: %d are open (the limit); slow ones are closed after %g s",
                self.max_connections,
                self.read_timeout_s,
            )
            transport.close()
            return False
        connection = self._open[peer] = _Connection(self, transport)
        connection.arm()
        return True

    def _closed(self, transport: asyncio.BaseTransport) -> None:
        peer = _peer(transport)
        connection = self._open.get(peer) if peer is not None else None
        if connection is not None and connection.transport is transport:
            connection.disarm()
            del self._open[peer]  # type: ignore[arg-type]


def _peer(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    # The same (host, port) key uvicorn puts in the ASGI scope as "client".
    info = transport.get_extra_info("peername")
    if isinstance(info, list | tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


def check_exposure(host: str, token: str | None, *, insecure: bool) -> None:
    """Raise ValueError for a non-loopback ``host`` without a token, unless ``insecure``."""
    if token is None and not insecure and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host} without a token: anyone who can reach it could write cost "
            f"data. Set {_config.SERVE_TOKEN.name} (or --token), bind 127.0.0.1, or pass --insecure "
            "(insecure=True) to accept unauthenticated senders, e.g. on a private network"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names a loopback interface only (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to any interface
