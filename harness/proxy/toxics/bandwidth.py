"""The bandwidth toxic: the stream passes at most `rate` KB/s (1 KB = 1000 bytes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from .base import Chunk, Emit, InvalidAttributeError, Toxic, ToxicContext


@dataclass(slots=True)
class BandwidthState:
    """The loop time at which the stream may send its next byte."""

    next_send: float = 0.0


class BandwidthToxic(Toxic):
    """Hold each chunk for its transmission time at `rate`; a rate of 0 keeps data back until the
    toxic is changed or removed."""

    type_name = "bandwidth"
    attribute_names = ("rate",)

    @classmethod
    def check_attributes(cls, attributes: Mapping[str, int]) -> None:
        if attributes["rate"] < 0:
            raise InvalidAttributeError(
                f"attribute rate must be 0 or more KB/s, got {attributes['rate']}"
            )

    def new_state(self) -> object:
        return BandwidthState()

    async def pipe(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        state = cast(BandwidthState, ctx.state)
        data = chunk.data
        while data and ctx.live:
            rate = ctx.toxic.attributes["rate"]
            if rate == 0:
                await ctx.wait_interrupt()
                continue

            # Send at most 100 ms worth of data per step so that a low rate stays smooth.
            bytes_per_second = rate * 1000
            piece = data[: max(1, bytes_per_second // 10)]
            start = max(ctx.loop.time(), state.next_send)
            deadline = start + len(piece) / bytes_per_second
            if not await ctx.sleep_until(deadline):
                continue
            state.next_send = deadline
            data = data[len(piece) :]
            await emit(Chunk(piece, deadline))

        if data:
            # The toxic was removed or disabled while holding data: pass the rest on unchanged.
            await emit(Chunk(data, chunk.timestamp))
