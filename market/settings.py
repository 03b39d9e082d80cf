"""The settings parsing the service and the simulator share: lists, numbers, symbols, and the one-line error."""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .instrument import Instrument

# Bybit-style symbols; short because the live IPC packs them into 512-byte slots.
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,23}$")

Settings = TypeVar("Settings", bound=BaseModel)


class ConfigError(Exception):
    """A configuration problem a user can fix; str() is the single line to print."""


def split_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(","))
    if isinstance(value, (int, float)):
        return (str(value),)
    return tuple(str(part).strip() for part in value)


def positive_numbers(value: Any, name: str) -> tuple[float, ...]:
    out = []
    for part in split_list(value):
        try:
            number = float(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a number") from None
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"{part!r} is not a positive number")
        out.append(number)
    if not out:
        raise ValueError(f"{name} is empty")
    return tuple(out)


def symbol_list(value: Any, upper: bool) -> tuple[str, ...]:
    """A comma list of distinct symbols, upper-cased first when `upper` (Bybit's topics are case sensitive)."""
    listed = tuple(part.upper() for part in split_list(value)) if upper else split_list(value)
    shape = "letters and digits" if upper else "capital letters and digits"
    for symbol in listed:
        if not SYMBOL_PATTERN.match(symbol):
            raise ValueError(f"{symbol!r} is not a symbol (like BTCUSDT: 2-24 {shape})")
    if len(set(listed)) != len(listed):
        raise ValueError(f"a symbol is listed twice in {','.join(listed)}")
    return listed


def log_level(value: Any, levels: Sequence[str]) -> Any:
    if isinstance(value, str):
        if value.strip().lower() not in levels:
            raise ValueError(f"unknown log level {value!r}; use one of {', '.join(levels)}")
        return value.strip().lower()
    return value


def check_per_symbol(count: int, lists: Mapping[str, tuple[float, ...]]) -> None:
    """Each named list holds one value for every symbol, or one per symbol."""
    for name, values in lists.items():
        if len(values) not in (1, count):
            raise ValueError(f"{name} has {len(values)} values for {count} symbols; give one value, or one per symbol")


def pick(values: tuple[float, ...], i: int) -> float:
    """Symbol i's value from a list of one value for every symbol, or one per symbol."""
    return values[0] if len(values) == 1 else values[i]


def instruments_for(symbols: Sequence[str], tick_size: tuple[float, ...],
                    lot_size: tuple[float, ...]) -> tuple[Instrument, ...]:
    return tuple(Instrument(symbol, pick(tick_size, i), pick(lot_size, i)) for i, symbol in enumerate(symbols))


def describe(error: ValidationError, env_name: Callable[[str], str], hidden: Collection[str] = ()) -> str:
    """One line naming each bad variable, its value (unless hidden) and what is wrong with it."""
    parts = []
    for item in error.errors():
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        loc = item.get("loc", ())
        if not loc:
            parts.append(message)
            continue
        name = env_name(str(loc[0]))
        raw = os.environ.get(name, os.environ.get(name.lower()))
        shown = f"={raw!r}" if raw is not None and name not in hidden else ""
        parts.append(f"{name}{shown}: {message}")
    return "; ".join(parts)


def load(cls: type[Settings], overrides: Mapping[str, Any], env_name: Callable[[str], str],
         hidden: Collection[str] = ()) -> Settings:
    """Settings from the environment (overrides win); a ConfigError with one line when something is wrong."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"bad configuration: {describe(exc, env_name, hidden)}") from None
