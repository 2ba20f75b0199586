"""One direction of a link: bytes read from a source transport, written to a destination.

With no live toxic the stream is in direct mode: `feed` writes each read straight to the
destination, with no queue and no task. With a toxic, reads go into a queue that one worker task
passes through the toxic chain in order. The stream returns to direct mode only once the toxics are
gone and the queue is empty, so the order of bytes is kept across the switch.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

from .log import log_event
from .toxics import Chunk, Direction, Toxic, ToxicContext

if TYPE_CHECKING:
    from .link import Link

# Reading from the source pauses while this many bytes wait in the toxic queue, so a stalled
# stream (bandwidth rate 0, a long latency) leaves data in the kernel instead of in memory.
QUEUE_HIGH_WATER = 1024 * 1024
QUEUE_LOW_WATER = 256 * 1024

_PAUSED_BY_DESTINATION = 1
_PAUSED_BY_QUEUE = 2


class Stream:
    """Pass the bytes of one direction of a link through its toxics."""

    __slots__ = (
        "_drain_waiter",
        "_pause_reasons",
        "_wakeup",
        "bytes_received",
        "bytes_sent",
        "closed",
        "contexts",
        "dest",
        "dest_paused",
        "direct",
        "direction",
        "eof_received",
        "eof_sent",
        "link",
        "loop",
        "on_activation",
        "queue",
        "queued_bytes",
        "rng",
        "source",
        "worker",
    )

    def __init__(
        self,
        link: Link,
        direction: Direction,
        source: asyncio.Transport,
        dest: asyncio.Transport,
        rng: random.Random,
        on_activation: Callable[[Toxic], None],
    ) -> None:
        self.link = link
        self.direction = direction
        self.source = source
        self.dest = dest
        self.rng = rng
        self.on_activation = on_activation
        self.loop = asyncio.get_running_loop()

        self.direct = True
        self.closed = False
        self.contexts: list[ToxicContext] = []
        self.queue: deque[Chunk] = deque()
        self.queued_bytes = 0
        self.worker: asyncio.Task[None] | None = None
        self.eof_received = False
        self.eof_sent = False
        self.dest_paused = False
        self.bytes_received = 0
        self.bytes_sent = 0
        self._pause_reasons = 0
        self._wakeup: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None

    # Data from the source transport.

    def feed(self, data: bytes) -> None:
        """Take bytes read from the source: write them at once, or queue them for the toxics."""
        size = len(data)
        self.bytes_received += size
        if self.direct:
            self.bytes_sent += size
            self.dest.write(data)
            return

        self.queue.append(Chunk(data, self.loop.time()))
        self.queued_bytes += size
        if self.queued_bytes >= QUEUE_HIGH_WATER:
            self._pause_source(_PAUSED_BY_QUEUE)
        self._kick()

    def feed_eof(self) -> None:
        """Take the end of the source's data: forward it after the data queued before it."""
        self.eof_received = True
        if self.direct:
            self._send_eof()
        else:
            self._kick()

    # Flow control, called by the destination transport's protocol.

    def pause_writing(self) -> None:
        """Stop reading the source while the destination's write buffer is full."""
        self.dest_paused = True
        self._pause_source(_PAUSED_BY_DESTINATION)

    def resume_writing(self) -> None:
        """Read the source again once the destination's write buffer has drained."""
        self.dest_paused = False
        self._resume_source(_PAUSED_BY_DESTINATION)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # Toxic changes.

    def attach(self, toxics: Iterable[Toxic]) -> None:
        """Set up the toxics of a new connection, in chain order."""
        for toxic in toxics:
            self.contexts.append(ToxicContext(toxic, self.link, self.loop))
        self._redraw()

    def add_toxic(self, toxic: Toxic) -> None:
        """Append a toxic to the chain; it applies from the next chunk on."""
        self.contexts.append(ToxicContext(toxic, self.link, self.loop))
        self._redraw()

    def replace_toxic(self, toxic: Toxic) -> None:
        """Swap in a changed version of a toxic, keeping its per-connection state."""
        for ctx in self.contexts:
            if ctx.toxic.name == toxic.name:
                if ctx.live:
                    ctx.enabled = False
                    ctx.toxic.on_deactivate(ctx, removed=False)
                ctx.toxic = toxic
                ctx.interrupt()
                break
        self._redraw()

    def remove_toxic(self, name: str) -> None:
        """Remove a toxic from the chain; data it holds is released to the rest of the chain."""
        for ctx in self.contexts:
            if ctx.toxic.name == name:
                self.contexts.remove(ctx)
                was_live = ctx.live
                ctx.removed = True
                ctx.interrupt()
                if was_live:
                    ctx.toxic.on_deactivate(ctx, removed=True)
                break
        self._redraw()

    def _redraw(self) -> None:
        # Toxicity is drawn again for every toxic of the stream whenever its toxics change.
        if self.closed:
            return
        for ctx in self.contexts:
            enabled = self.rng.random() < ctx.toxic.toxicity
            if enabled == ctx.enabled:
                continue
            ctx.enabled = enabled
            if enabled:
                self.on_activation(ctx.toxic)
                ctx.toxic.on_activate(ctx)
            else:
                ctx.interrupt()
                ctx.toxic.on_deactivate(ctx, removed=False)
            if self.closed:
                return
        self._update_mode()

    def _update_mode(self) -> None:
        if self.closed:
            return
        live = any(ctx.live for ctx in self.contexts)
        self.direct = not live and not self.queue and self.worker is None
        if not self.direct:
            self._kick()

    # The toxic pipeline.

    def _kick(self) -> None:
        if self.worker is None:
            if self.eof_sent:
                # Nothing can arrive after the end of the stream, so no worker is needed.
                return
            self.worker = self.loop.create_task(self._run())
            return
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _run(self) -> None:
        try:
            while not self.closed:
                if self.queue:
                    chunk = self.queue.popleft()
                    self.queued_bytes -= len(chunk.data)
                    if self.queued_bytes <= QUEUE_LOW_WATER:
                        self._resume_source(_PAUSED_BY_QUEUE)
                    await self._push(tuple(self.contexts), 0, chunk)
                    continue

                if self.eof_received:
                    for ctx in tuple(self.contexts):
                        if ctx.live:
                            await ctx.toxic.before_eof(ctx)
                    if not self.closed:
                        self._send_eof()
                    return

                if not any(ctx.live for ctx in self.contexts):
                    return

                self._wakeup = self.loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
        except Exception as exc:
            # A bug in a toxic must not take the server down: close this connection only.
            log_event(
                "connection.error",
                logging.ERROR,
                proxy=self.link.proxy.name,
                client=self.link.client_address,
                stream=str(self.direction),
                err=repr(exc),
            )
            self.link.close_link("toxic error")
        finally:
            self.worker = None
            self._update_mode()

    async def _push(self, chain: tuple[ToxicContext, ...], index: int, chunk: Chunk) -> None:
        # Each toxic calls `emit` to hand a chunk to the next live toxic; the last one writes it.
        while index < len(chain) and not chain[index].live:
            index += 1
        if index == len(chain):
            await self._write(chunk.data)
            return
        ctx = chain[index]
        await ctx.toxic.pipe(ctx, chunk, partial(self._push, chain, index + 1))

    async def _write(self, data: bytes) -> None:
        if self.closed or self.dest.is_closing():
            return
        self.bytes_sent += len(data)
        self.dest.write(data)
        while self.dest_paused and not self.closed:
            self._drain_waiter = self.loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def _send_eof(self) -> None:
        if self.eof_sent:
            return
        self.eof_sent = True
        if not self.dest.is_closing() and self.dest.can_write_eof():
            self.dest.write_eof()
        self.link.on_eof_sent()

    # Source reading.

    def _pause_source(self, reason: int) -> None:
        if not self._pause_reasons and not self.source.is_closing():
            self.source.pause_reading()
        self._pause_reasons |= reason

    def _resume_source(self, reason: int) -> None:
        if not self._pause_reasons & reason:
            return
        self._pause_reasons &= ~reason
        if not self._pause_reasons and not self.source.is_closing():
            self.source.resume_reading()

    def close(self) -> None:
        """Stop the stream: cancel toxic timers and the worker task, if any."""
        if self.closed:
            return
        self.closed = True
        for ctx in self.contexts:
            if ctx.live:
                ctx.toxic.on_deactivate(ctx, removed=False)
            ctx.removed = True
            ctx.interrupt()
        for waiter in (self._wakeup, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        worker = self.worker
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
