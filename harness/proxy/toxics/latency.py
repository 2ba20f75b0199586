"""The latency toxic: each chunk waits latency ± jitter milliseconds from when it was read."""

from __future__ import annotations

from .base import Chunk, Emit, Toxic, ToxicContext


class LatencyToxic(Toxic):
    """Delay every chunk; latency toxics on one stream add up because each one moves the
    chunk's timestamp forward by its own delay."""

    type_name = "latency"
    attribute_names = ("latency", "jitter")

    async def pipe(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        while True:
            attributes = ctx.toxic.attributes
            delay_ms = float(attributes["latency"])
            jitter = attributes["jitter"]
            if jitter > 0:
                delay_ms += ctx.control.rng.uniform(-jitter, jitter)

            # A negative latency, or a jitter larger than the latency, sends the chunk at once.
            # NOTE: uvloop's timers count whole milliseconds from a cached loop time, so a chunk
            # can leave up to about 0.6 ms before or after its deadline.
            deadline = chunk.timestamp + max(0.0, delay_ms) / 1000
            if await ctx.sleep_until(deadline):
                chunk.timestamp = deadline
                break
            if not ctx.live:
                # Removed or disabled: release the chunk now rather than drop it.
                break
        await emit(chunk)
