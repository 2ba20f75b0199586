"""A small HTTP/1.1 server for the API: keep-alive, Content-Length and chunked request bodies.

The API is a handful of JSON routes, so the standard library's asyncio streams are enough, and
the API shares the event loop of the data path with no framework between them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from .log import log_event

MAX_LINE_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_BODY_BYTES = 16 * 1024 * 1024
# As Toxiproxy's API server: a request must arrive within 15 s, and idle connections close
# after 60 s.
READ_TIMEOUT_SECONDS = 15.0
IDLE_TIMEOUT_SECONDS = 60.0


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """Return the target without its query string."""
        return self.target.split("?", 1)[0]


@dataclass
class Response:
    """One HTTP response; `headers` contains headers beyond Content-Type and Content-Length."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    """A request that cannot be parsed. The server sends an error response and closes."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header line too long") from exc
    return line.rstrip(b"\r\n")


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length_text = headers.get("content-length", "0").strip() or "0"
    if not length_text.isdigit():
        raise HttpError(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {length_text!r}")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes is too large")
    return await reader.readexactly(length) if length else b""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_text = (await _read_line(reader)).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, "invalid chunk size") from exc
        if size == 0:
            while await _read_line(reader):
                pass  # Trailer fields are read and ignored.
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "chunked body is too large")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; return None when the client closed the connection between requests."""
    line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_SECONDS)
    while line in (b"\r\n", b"\n"):
        line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_SECONDS)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts

    async def read_rest() -> tuple[dict[str, str], bytes]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            header = await _read_line(reader)
            if not header:
                return headers, await _read_body(reader, headers)
            name, sep, value = header.decode("latin-1").partition(":")
            if not sep:
                raise HttpError(HTTPStatus.BAD_REQUEST, "malformed header line")
            headers[name.strip().lower()] = value.strip()
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header fields")

    headers, body = await asyncio.wait_for(read_rest(), READ_TIMEOUT_SECONDS)
    return Request(method, target, version, headers, body)


def encode_response(response: Response, keep_alive: bool) -> bytes:
    """Return the response's status line, headers and body as bytes."""
    phrase = HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    if response.status != HTTPStatus.NO_CONTENT:
        lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
    lines.extend(f"{name}: {value}" for name, value in response.headers.items())
    if not keep_alive:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if response.status == HTTPStatus.NO_CONTENT else head + response.body


def wants_keep_alive(request: Request) -> bool:
    """Return whether the connection stays open after this request (HTTP/1.1 default)."""
    connection = request.headers.get("connection", "").lower()
    if request.version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    error_response: Callable[[HttpError], Response],
) -> None:
    """Serve requests on one connection until the client closes it or sends Connection: close."""
    try:
        while True:
            try:
                request = await read_request(reader)
            except HttpError as exc:
                writer.write(encode_response(error_response(exc), keep_alive=False))
                await writer.drain()
                return
            if request is None:
                return
            keep_alive = wants_keep_alive(request)
            response = await handler(request)
            writer.write(encode_response(response, keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    except Exception as exc:
        log_event("api.error", logging.ERROR, err=repr(exc))
    finally:
        writer.close()
