"""Progress lines for long steps: elapsed time, step name, and what is happening now."""
from __future__ import annotations

import sys
import time
from typing import NoReturn


class Step:
    """Prints '[  12s] name: message' lines; use as a context manager around one long step."""

    def __init__(self, name: str):
        self.name = name
        self.started = time.monotonic()
        self.said_at = self.started

    def __enter__(self) -> "Step":
        self.say("started")
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.say("done" if kind is None else f"failed ({value})")

    def say(self, message: str) -> None:
        self.said_at = time.monotonic()
        elapsed = self.said_at - self.started
        print(f"[{elapsed:6.0f}s] {self.name}: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop with one clear line on stderr and a non-zero exit."""
    print(f"hftlive: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)
