"""The limit_data toxic: the connection closes after `bytes` bytes on the stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from .base import Chunk, Emit, Toxic, ToxicContext


@dataclass(slots=True)
class LimitDataState:
    """Bytes this toxic has passed on the stream so far."""

    transmitted: int = 0


class LimitDataToxic(Toxic):
    """Pass exactly `bytes` bytes, then close the connection. A limit of 0 or less closes the
    connection on the first data, as Toxiproxy does."""

    type_name = "limit_data"
    attribute_names = ("bytes",)

    def new_state(self) -> object:
        return LimitDataState()

    async def pipe(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        state = cast(LimitDataState, ctx.state)
        limit = ctx.toxic.attributes["bytes"]
        remaining = max(0, limit - state.transmitted)
        data = chunk.data[:remaining] if remaining < len(chunk.data) else chunk.data
        if data:
            state.transmitted += len(data)
            await emit(Chunk(data, chunk.timestamp))
        if state.transmitted >= limit:
            ctx.control.close_link("limit_data reached")
