"""strategies/market_maker.py's 5 s reports, read back from its log (the bot's, or a backtest's stderr)."""
from __future__ import annotations

import re

REPORT = re.compile(r"market_maker: position (?P<position>\S+) open orders (?P<open>\d+) "
                    r"best (?P<bid>-?\d+) (?P<ask>-?\d+) failed requests (?P<failed>\d+) last code (?P<code>-?\d+)")
ORDER = re.compile(r"market_maker:   order \d+ side (?P<side>-?\d+) tick (?P<tick>-?\d+) status (?P<status>\d+) req \d+")


def reports(log: str) -> list[dict]:
    """Each report: position, open orders, the book's best ticks, the requests the bot refused (and the last
    error code), and the orders it held then as (side, tick, status)."""
    found: list[dict] = []
    for line in log.splitlines():
        if m := REPORT.search(line):
            found.append({"position": float(m["position"]), "open": int(m["open"]),
                          "best": (int(m["bid"]), int(m["ask"])), "failed": int(m["failed"]),
                          "code": int(m["code"]), "orders": []})
        elif (m := ORDER.search(line)) and found:
            found[-1]["orders"].append((int(m["side"]), int(m["tick"]), int(m["status"])))
    return found
