"""One plain HTTP/1.1 exchange on a fresh connection, parsed by httptools.

The http prober's checks of http:// URLs go through here instead of httpcore and h11: the
same request bytes, the same trace events (the phases and the time to first byte come from
them), the same httpcore exceptions for the same failures (so every message stays as it was),
for less CPU per check (bench/vs_blackbox.py). httptools is the llhttp parser uvicorn uses;
what it does not do is done here: a cap on the response head (a hostile server must not make
us buffer without end), responses without a length that end with the connection, and HEAD.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

import httpcore
import httptools

__all__ = ["MAX_HEAD", "READ_SIZE", "Exchange", "request_bytes"]

# The most a response's status line and headers may take (h11, httpcore's parser, allows 16 KiB).
MAX_HEAD = 64 * 1024
READ_SIZE = 64 * 1024


class Exchange:
    """The response to one request: `status`, `headers`, `version`, then `body()`."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, *, head_only: bool) -> None:
        self._stream = stream
        self._head_only = head_only
        self._parser = httptools.HttpResponseParser(self)
        self._chunks: deque[bytes] = deque()
        self._header_list: list[tuple[bytes, bytes]] = []
        self._head_done = False
        self._complete = False
        self._head_size = 0
        self._field = b""
        self.status = 0
        self.reason = b""
        self.version = b"HTTP/1.1"

    # ------------------------------------------------------------- httptools callbacks

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self._header_list = []
            self.reason = b""
            return
        self.status = status
        self.version = b"HTTP/" + self._parser.get_http_version().encode("ascii")
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._head_done:
            self._complete = True

    # ------------------------------------------------------------- reading

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return self._header_list

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise httpcore.RemoteProtocolError("the server switched protocols") from None
        except httptools.HttpParserError as exc:
            raise httpcore.RemoteProtocolError(str(exc) or "malformed response") from exc

    async def read_head(self, timeout: float | None) -> None:
        """Read until the status line and headers are in; raises httpcore's errors."""
        while not self._head_done:
            data = await self._stream.read(READ_SIZE, timeout)
            if not data:
                raise httpcore.RemoteProtocolError(
                    "Server disconnected without sending a response."
                    if self._head_size == 0
                    else "peer closed connection without sending complete message head"
                )
            self._head_size += len(data)
            self._feed(data)
            if not self._head_done and self._head_size > MAX_HEAD:
                raise httpcore.RemoteProtocolError(
                    f"the response head is longer than {MAX_HEAD // 1024} KiB"
                )
        if self._head_only or self.status in (204, 304):
            self._complete = True

    def whole_body(self) -> bytes | None:
        """The whole body when it is complete already (it came with the head), else None."""
        if not self._complete:
            return None
        body = b"".join(self._chunks)
        self._chunks.clear()
        return body

    async def body(self, timeout: float | None) -> AsyncIterator[bytes]:
        """The body as it arrives; a body without a length ends with the connection."""
        while True:
            while self._chunks:
                yield self._chunks.popleft()
            if self._complete:
                return
            data = await self._stream.read(READ_SIZE, timeout)
            if not data:
                if self._has_length():
                    raise httpcore.RemoteProtocolError(
                        "peer closed connection without sending complete message body"
                    )
                return
            self._feed(data)

    def _has_length(self) -> bool:
        for name, value in self._header_list:
            lowered = name.lower()
            if lowered == b"content-length":
                return True
            if lowered == b"transfer-encoding" and b"chunked" in value.lower():
                return True
        return False


def request_bytes(request: httpcore.Request, body: bytes) -> bytes:
    """The request as it goes on the wire: the request line, then the headers httpx made
    (Host first among them), then the body."""
    target = request.url.target
    lines = [request.method + b" " + target + b" HTTP/1.1\r\n"]
    lines.extend(name + b": " + value + b"\r\n" for name, value in request.headers)
    lines.append(b"\r\n")
    return b"".join(lines) + body
