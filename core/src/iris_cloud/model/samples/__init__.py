"""The sample messages of the IRIS reference, bundled as package data.

A copy of ``shared/iris/examples`` (documented examples plus ``quirks/``), used
by ``iris-cloud validate --samples``, the demo and the tests.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = ["sample_files"]


def sample_files() -> list[Traversable]:
    """Every bundled sample message, documented examples first, then ``quirks/``.

    Each item has ``.name`` and ``.read_bytes()``.
    """
    root = files(__name__)
    found = sorted((p for p in root.iterdir() if p.name.endswith(".json")), key=lambda p: p.name)
    quirks = root / "quirks"
    found += sorted((p for p in quirks.iterdir() if p.name.endswith(".json")), key=lambda p: p.name)
    return found
