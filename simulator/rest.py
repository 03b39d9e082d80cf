"""The REST endpoints a Bybit client reads before streaming: instruments-info (linear) and server time."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from market.instrument import Instrument

from .wire import instrument_info, rest

CATEGORIES = ("spot", "linear", "inverse", "option")


def instruments(query: Mapping[str, str], insts: Sequence[Instrument], launch_ms: int) -> dict[str, Any]:
    """Only linear perpetuals exist here: other categories, other symbols and other statuses list nothing."""
    category = query.get("category", "")
    if category not in CATEGORIES:
        return rest({}, 10001, "Illegal category")
    found = [inst for inst in insts if category == "linear" and _matches(inst, query)]
    return rest({"category": category, "list": [instrument_info(inst, launch_ms) for inst in found],
                 "nextPageCursor": ""})


def _matches(inst: Instrument, query: Mapping[str, str]) -> bool:
    base = instrument_info(inst, 0)["baseCoin"]
    return (query.get("symbol", inst.symbol) == inst.symbol and query.get("status", "Trading") == "Trading"
            and query.get("baseCoin", base) == base)


def server_time() -> dict[str, Any]:
    ns = time.time_ns()
    return rest({"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)})
