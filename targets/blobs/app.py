"""The blobs service: a large object download, buffered whole or streamed in chunks.

`GET /blobs/object` sends an object of BLOBS_SIZE_MB MiB made of one fixed chunk repeated, so
the object is generated on the fly and never stored on disk. Settings (environment):

- BLOBS_MODE: `buffer` builds the whole body in memory before the first byte goes out;
  `stream` hands the server one chunk at a time, and the next chunk is made only once the
  client's connection takes more bytes (uvicorn waits while its transport is paused).
- BLOBS_SIZE_MB: size of the object in MiB.

`GET /blobs/small` sends a small object, the light traffic that runs all the time.
`blobs_produced_bytes_total` counts the bytes handed to the server, the producer's side of the
download, so its rate is the producer rate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from targets.common import env_float, env_str, health, metrics

MIB = 1024 * 1024
CHUNK_BYTES = 64 * 1024
# A fixed byte pattern rather than zeros, so a client can check the bytes it receives.
CHUNK = bytes(range(256)) * (CHUNK_BYTES // 256)
SMALL_BYTES = 4096

MODE = env_str("BLOBS_MODE", "stream")
SIZE_BYTES = int(env_float("BLOBS_SIZE_MB", 1024.0) * MIB)

if MODE not in {"buffer", "stream"}:
    raise SystemExit(f"invalid BLOBS_MODE={MODE!r}: expected buffer or stream")

PRODUCED = Counter("blobs_produced_bytes", "Bytes of objects handed to the server", ["mode"])
DOWNLOADS = Counter("blobs_downloads", "Object downloads started", ["mode"])
# Export both series from the start, so a rate over a window that begins before the first
# download reads 0 rather than no data.
PRODUCED.labels(MODE)
DOWNLOADS.labels(MODE)


def chunks(size: int) -> Iterator[bytes]:
    """Yield the object's bytes one chunk at a time. The last chunk may be shorter."""
    left = size
    while left > 0:
        piece = CHUNK if left >= CHUNK_BYTES else CHUNK[:left]
        left -= len(piece)
        yield piece


def build_body(size: int) -> bytearray:
    """Return the whole object in one buffer, grown chunk by chunk as the chunks are made."""
    body = bytearray()
    for piece in chunks(size):
        body += piece
    return body


async def _counted(size: int) -> AsyncIterator[bytes]:
    for piece in chunks(size):
        # uvicorn returns from `send` at once after the client is gone, so without this
        # checkpoint Starlette's disconnect watcher never runs and the loop makes the rest.
        await anyio.sleep(0)
        PRODUCED.labels("stream").inc(len(piece))
        yield piece


async def blob_object(request: Request) -> Response:
    """Send the large object, buffered whole or streamed, as BLOBS_MODE sets."""
    DOWNLOADS.labels(MODE).inc()
    headers = {"Content-Length": str(SIZE_BYTES)}
    if MODE == "stream":
        return StreamingResponse(
            _counted(SIZE_BYTES), media_type="application/octet-stream", headers=headers
        )

    # A worker thread builds the body, so /health and /metrics still respond meanwhile.
    body = await anyio.to_thread.run_sync(build_body, SIZE_BYTES)
    PRODUCED.labels("buffer").inc(len(body))
    return Response(memoryview(body), media_type="application/octet-stream")


async def blob_small(request: Request) -> Response:
    """Send a small object."""
    return Response(CHUNK[:SMALL_BYTES], media_type="application/octet-stream")


app = Starlette(
    routes=[
        Route("/blobs/object", blob_object),
        Route("/blobs/small", blob_small),
        Route("/health", health),
        Route("/metrics", metrics),
    ]
)
