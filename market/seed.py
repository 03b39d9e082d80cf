"""Per-symbol seeds: one run seed gives every symbol its own reproducible stream of events."""
from __future__ import annotations

import zlib


def symbol_seed(seed: int, symbol: str) -> int:
    """Each symbol its own stream of events, stable across processes (str hashes are not)."""
    return (seed * 1_000_003 + zlib.crc32(symbol.encode())) & 0xFFFF_FFFF_FFFF
