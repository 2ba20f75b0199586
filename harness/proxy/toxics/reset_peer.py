"""The reset_peer toxic: after the first data, wait `timeout` ms and reset the connection."""

from __future__ import annotations

from .base import Chunk, Emit, Toxic, ToxicContext


class ResetPeerToxic(Toxic):
    """Hold the first chunk, then reset both sides of the connection with a TCP RST.

    The reset also applies to connections that were open before the toxic was added.
    """

    type_name = "reset_peer"
    attribute_names = ("timeout",)

    async def pipe(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        start = ctx.loop.time()
        while ctx.live:
            deadline = start + max(0, ctx.toxic.attributes["timeout"]) / 1000
            if await ctx.sleep_until(deadline):
                ctx.control.reset_link("reset_peer")
                return

        # Removed or disabled before the reset: let the held chunk through.
        await emit(chunk)
