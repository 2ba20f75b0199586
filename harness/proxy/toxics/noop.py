"""The noop toxic: data passes unchanged (through the toxic pipeline, not the direct path)."""

from __future__ import annotations

from .base import Toxic


class NoopToxic(Toxic):
    """Pass every chunk on unchanged."""

    type_name = "noop"
