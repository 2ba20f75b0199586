"""The slicer toxic: chunks are cut into pieces of average_size ± size_variation bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from .base import Chunk, Emit, Toxic, ToxicContext, require_positive

# Pieces cut without a delay yield to the event loop this often, so a chunk cut into single
# bytes does not stall the API and the other connections.
YIELD_EVERY_PIECES = 256


class SlicerToxic(Toxic):
    """Cut chunks into pieces, waiting `delay` microseconds between pieces.

    A size_variation at or above average_size is clamped so every piece is at least one byte.
    """

    type_name = "slicer"
    attribute_names = ("average_size", "size_variation", "delay")

    @classmethod
    def check_attributes(cls, attributes: Mapping[str, int]) -> None:
        require_positive(attributes, "average_size")

    async def pipe(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        data = chunk.data
        offset = 0
        pieces = 0
        while offset < len(data):
            if not ctx.live:
                await emit(Chunk(data[offset:], chunk.timestamp))
                return

            attributes = ctx.toxic.attributes
            average = attributes["average_size"]
            variation = min(max(0, attributes["size_variation"]), average - 1)
            size = average
            if variation > 0:
                size += ctx.control.rng.randint(-variation, variation)

            piece = data[offset : offset + size]
            offset += len(piece)
            await emit(Chunk(piece, chunk.timestamp))
            pieces += 1
            if offset >= len(data):
                return

            delay_us = attributes["delay"]
            if delay_us > 0:
                await ctx.sleep_until(ctx.loop.time() + delay_us / 1_000_000)
            elif pieces % YIELD_EVERY_PIECES == 0:
                await asyncio.sleep(0)
