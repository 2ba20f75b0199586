"""Toxic types, registered by their Toxiproxy type name."""

from __future__ import annotations

from .bandwidth import BandwidthToxic
from .base import Chunk, Direction, InvalidAttributeError, LinkControl, Toxic, ToxicContext
from .latency import LatencyToxic
from .limit_data import LimitDataToxic
from .noop import NoopToxic
from .reset_peer import ResetPeerToxic
from .slicer import SlicerToxic
from .slow_close import SlowCloseToxic
from .timeout import TimeoutToxic

TOXIC_TYPES: dict[str, type[Toxic]] = {
    toxic_type.type_name: toxic_type
    for toxic_type in (
        LatencyToxic,
        BandwidthToxic,
        SlowCloseToxic,
        TimeoutToxic,
        ResetPeerToxic,
        SlicerToxic,
        LimitDataToxic,
        NoopToxic,
    )
}

__all__ = [
    "TOXIC_TYPES",
    "Chunk",
    "Direction",
    "InvalidAttributeError",
    "LinkControl",
    "Toxic",
    "ToxicContext",
]
