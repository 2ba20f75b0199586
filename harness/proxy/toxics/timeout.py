"""The timeout toxic: data stops, and the connection closes after `timeout` ms without data."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

from .base import MAX_TIMER_SECONDS, Chunk, Emit, Toxic, ToxicContext


@dataclass(slots=True)
class TimeoutState:
    """The pending close of the connection, if the timeout is above zero."""

    timer: asyncio.TimerHandle | None = None


class TimeoutToxic(Toxic):
    """Drop every chunk and close the connection once `timeout` ms pass with no data.

    A timeout of 0 or less keeps the connection open forever. Removing the toxic closes the
    connection, because the data it dropped leaves the stream corrupt.
    """

    type_name = "timeout"
    attribute_names = ("timeout",)

    def new_state(self) -> object:
        return TimeoutState()

    def on_activate(self, ctx: ToxicContext) -> None:
        self._restart_timer(ctx)

    def on_deactivate(self, ctx: ToxicContext, removed: bool) -> None:
        state = cast(TimeoutState, ctx.state)
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if removed:
            ctx.control.close_link("timeout toxic removed")

    async def pipe(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        self._restart_timer(ctx)

    @staticmethod
    def _restart_timer(ctx: ToxicContext) -> None:
        state = cast(TimeoutState, ctx.state)
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None

        seconds = ctx.toxic.attributes["timeout"] / 1000
        if 0 < seconds <= MAX_TIMER_SECONDS:
            state.timer = ctx.loop.call_later(seconds, ctx.control.close_link, "timeout expired")
