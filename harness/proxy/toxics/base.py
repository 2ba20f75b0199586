"""The toxic base class, the per-connection context a toxic runs in, and attribute checks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol

# Waits longer than this (about 31 years) wait until the toxic is removed or changed instead,
# because event loop timers overflow on int64 millisecond values near their maximum.
MAX_TIMER_SECONDS = 1e9

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class Direction(StrEnum):
    """The stream a toxic acts on: upstream is client to server, downstream server to client."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


@dataclass(slots=True)
class Chunk:
    """Bytes read from one side of a link, with the loop time at which they were read."""

    data: bytes
    timestamp: float


Emit = Callable[[Chunk], Awaitable[None]]


class InvalidAttributeError(ValueError):
    """An attribute value that the toxic cannot run with; the API returns it as a 400."""


class LinkControl(Protocol):
    """The operations a toxic may perform on the link whose stream it runs on."""

    rng: random.Random

    def close_link(self, reason: str) -> None: ...

    def reset_link(self, reason: str) -> None: ...


class ToxicContext:
    """One toxic on one stream of one link: its toxicity draw, its state and its waits.

    A wait returns early when the toxic is interrupted, that is removed, changed, or disabled by a
    new toxicity draw, so that held data is released rather than lost.
    """

    __slots__ = ("_waiter", "control", "enabled", "loop", "removed", "state", "toxic")

    def __init__(self, toxic: Toxic, control: LinkControl, loop: asyncio.AbstractEventLoop) -> None:
        self.toxic = toxic
        self.control = control
        self.loop = loop
        self.enabled = False
        self.removed = False
        self.state: object = toxic.new_state()
        self._waiter: asyncio.Future[bool] | None = None

    @property
    def live(self) -> bool:
        """Return whether the toxic still acts on this stream."""
        return self.enabled and not self.removed

    def interrupt(self) -> None:
        """Wake a pending wait so the toxic re-reads its attributes or releases its data."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(False)

    async def sleep_until(self, deadline: float) -> bool:
        """Wait until the loop time `deadline`; return False if interrupted first."""
        if not self.live:
            return False
        delay = deadline - self.loop.time()
        if delay <= 0:
            return True
        if delay > MAX_TIMER_SECONDS:
            await self.wait_interrupt()
            return False

        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._waiter = waiter
        handle = self.loop.call_at(deadline, _resolve, waiter)
        try:
            return await waiter
        finally:
            handle.cancel()
            self._waiter = None

    async def wait_interrupt(self) -> None:
        """Wait until the toxic is interrupted (removed, changed or redrawn)."""
        if not self.live:
            return
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None


def _resolve(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


class Toxic:
    """A toxic registered on a proxy. Instances are immutable: an update creates a new one.

    Subclasses set `type_name` and `attribute_names` (all attributes are int64 values, as in
    Toxiproxy) and override the hooks they need. Hooks receive the `ToxicContext` of one stream of
    one link, and read attributes from `ctx.toxic`, which is the current version of the toxic.
    """

    type_name: ClassVar[str] = ""
    attribute_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, name: str, stream: Direction, toxicity: float, attributes: Mapping[str, int]
    ) -> None:
        self.name = name
        self.stream = stream
        self.toxicity = toxicity
        self.attributes = {key: int(attributes.get(key, 0)) for key in self.attribute_names}
        self.check_attributes(self.attributes)

    @classmethod
    def check_attributes(cls, attributes: Mapping[str, int]) -> None:
        """Raise InvalidAttributeError for values that the toxic cannot run with."""

    def replace(self, toxicity: float, attributes: Mapping[str, int]) -> Toxic:
        """Return a copy with new toxicity and attributes, checked like a new toxic."""
        return type(self)(self.name, self.stream, toxicity, attributes)

    def new_state(self) -> object:
        """Return the per-connection state of this toxic (None when it keeps none)."""
        return None

    def on_activate(self, ctx: ToxicContext) -> None:
        """Start acting on a stream, when a connection opens or the toxic becomes live on it."""

    def on_deactivate(self, ctx: ToxicContext, removed: bool) -> None:
        """Stop acting on a stream; `removed` is True when the toxic was deleted."""

    async def pipe(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        """Pass one chunk on to the next toxic, changed, delayed, cut or dropped."""
        await emit(chunk)

    async def before_eof(self, ctx: ToxicContext) -> None:
        """Run when the source side closed its half of the connection, before the close is sent."""

    def to_json(self) -> dict[str, object]:
        """Return the toxic as the Toxiproxy API shows it."""
        return {
            "name": self.name,
            "type": self.type_name,
            "stream": str(self.stream),
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


def require_positive(attributes: Mapping[str, int], key: str) -> None:
    """Raise InvalidAttributeError unless attributes[key] is above zero."""
    value = attributes[key]
    if value <= 0:
        raise InvalidAttributeError(f"attribute {key} must be greater than 0, got {value}")


def require_not_negative(attributes: Mapping[str, int], key: str) -> None:
    """Raise InvalidAttributeError when attributes[key] is below zero."""
    value = attributes[key]
    if value < 0:
        raise InvalidAttributeError(f"attribute {key} must be 0 or more, got {value}")
