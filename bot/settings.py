"""What the runner reads from the environment: the connector, the symbol and its tick and lot size."""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from . import UsageError

DEFAULT_CONNECTOR = "bybit_hft"   # docker/runtime.env's CONNECTOR_NAME
DEFAULT_SYMBOL = "BTCUSDT"
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
STEP_RANGE = (1e-9, 1e9)


@dataclass(frozen=True)
class Instrument:
    connector: str
    symbol: str
    tick_size: float
    lot_size: float


def step(name: str, text: str | None) -> float:
    """TICK_SIZE or LOT_SIZE: a positive number within STEP_RANGE."""
    if text is None or not text.strip():
        raise UsageError(f"{name} is not set: give the symbol's {name.split('_')[0].lower()} size, e.g. "
                         f"{name}={'0.1' if name == 'TICK_SIZE' else '0.001'} for BTCUSDT")
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number") from None
    low, high = STEP_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise UsageError(f"{name}={text!r} must be a number between {low:g} and {high:g}")
    return value


def name(setting: str, text: str | None, default: str) -> str:
    value = (text or "").strip() or default
    if not NAME.fullmatch(value):
        raise UsageError(f"{setting}={value!r} is not a name (letters, digits, _ . -; at most 64)")
    return value


def from_env(env: Mapping[str, str] = os.environ) -> Instrument:
    return Instrument(
        connector=name("CONNECTOR_NAME", env.get("CONNECTOR_NAME"), DEFAULT_CONNECTOR),
        symbol=name("SYMBOL", env.get("SYMBOL"), DEFAULT_SYMBOL).upper(),
        tick_size=step("TICK_SIZE", env.get("TICK_SIZE")),
        lot_size=step("LOT_SIZE", env.get("LOT_SIZE")),
    )
