"""The slow_close toxic: the close of the stream is sent `delay` milliseconds late."""

from __future__ import annotations

from .base import Toxic, ToxicContext


class SlowCloseToxic(Toxic):
    """Delay the end of the stream (the FIN the source side sent) by `delay` milliseconds."""

    type_name = "slow_close"
    attribute_names = ("delay",)

    async def before_eof(self, ctx: ToxicContext) -> None:
        start = ctx.loop.time()
        while ctx.live:
            deadline = start + max(0, ctx.toxic.attributes["delay"]) / 1000
            if await ctx.sleep_until(deadline):
                return
