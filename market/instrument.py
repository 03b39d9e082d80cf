"""An instrument: its symbol, tick and lot size, and the exact decimal price of a tick."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


def _decimals(step: float) -> int:
    """Digits after the decimal point that `step` needs (0.1 → 1, 0.0005 → 4, 5 → 0)."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    tick_size: float
    lot_size: float
    price_decimals: int = field(init=False)
    qty_decimals: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "price_decimals", _decimals(self.tick_size))
        object.__setattr__(self, "qty_decimals", _decimals(self.lot_size))

    def price(self, tick: int) -> float:
        """The price of a tick, rounded so that it prints as an exact multiple of the tick size."""
        return round(tick * self.tick_size, self.price_decimals)

    def tick(self, price: float) -> int:
        return round(price / self.tick_size)

    def qty(self, qty: float) -> float:
        return round(qty, self.qty_decimals)

    def lots(self, lots: int) -> float:
        return round(lots * self.lot_size, self.qty_decimals)
