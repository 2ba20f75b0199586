"""Locust user classes of the blobs service: light reads, and slow downloads of a large object.

A download counts one `MiB read` check per MiB that arrives, so the rps of that check is the
reader's rate in MiB/s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from locust import between, task

from harness.load.users import REQUEST_TIMEOUT_S, USER_CLASSES, _fire, _LoopbackUser

MIB = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
# A download stops after this long or this many bytes, whichever comes first.
DOWNLOAD_LIMIT_S = 30.0
DOWNLOAD_LIMIT_BYTES = 1024 * MIB


class BlobReader(_LoopbackUser):
    """Reads a small object now and then: the traffic that runs all the time."""

    wait_time = between(0.1, 0.3)

    @task
    def small(self) -> None:
        """Read the small object."""
        self.client.get("/blobs/small", name="/blobs/small", timeout=REQUEST_TIMEOUT_S)


class SlowDownloader(_LoopbackUser):
    """Downloads the large object and reads it as fast as its connection delivers it."""

    wait_time = between(0.5, 1.0)

    @task
    def download(self) -> None:
        """Read the object for at most DOWNLOAD_LIMIT_S or DOWNLOAD_LIMIT_BYTES."""
        response = self.client.get("/blobs/object", name="/blobs/object", stream=True,
                                   timeout=REQUEST_TIMEOUT_S)  # fmt: skip
        try:
            if response.status_code == 200:
                self._read(response.iter_content(chunk_size=READ_CHUNK_BYTES))
        finally:
            # Closing a response that was not read to the end drops its connection.
            response.close()

    def _read(self, pieces: Iterator[bytes]) -> None:
        started = time.time()
        deadline = started + DOWNLOAD_LIMIT_S
        read = 0
        last = started
        for piece in pieces:
            before = read // MIB
            read += len(piece)
            now = time.time()
            for _ in range(read // MIB - before):
                # Recorded when the MiB arrived, with the time it took since the last one.
                _fire(self, "MiB read", now, (now - last) * 1000, None)
                last = now
            if now >= deadline or read >= DOWNLOAD_LIMIT_BYTES:
                return


USER_CLASSES.update({cls.__name__: cls for cls in (BlobReader, SlowDownloader)})
