"""`python -m bot.watch URL PID`: while a strategy runs, watch the connector's control API (GET URL/trading).
A restarted connector (a new `instance`) no longer knows the bot's IPC registration and the bot's requests in
flight died with it, so the watcher stops the bot (SIGTERM: the strategy returns, cancelling what rests) and
exits with RESTART_EXIT; the runner passes that on and compose's restart policy starts the bot afresh, which
registers again and gets its open orders and position from the connector."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request

RESTART_EXIT = 75   # EX_TEMPFAIL: start again
POLL_S = 1.0


def instance(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/trading", timeout=2) as response:
            return json.loads(response.read()).get("instance")
    except (OSError, ValueError):
        return None


def watch(url: str, pid: int) -> int:
    first = None
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        now = instance(url)
        if now and first is None:
            first = now
        elif now and now != first:
            print(f"bot: the connector restarted (instance {first} → {now}): stopping the strategy to start over",
                  file=sys.stderr, flush=True)
            os.kill(pid, signal.SIGTERM)
            return RESTART_EXIT
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(watch(sys.argv[1], int(sys.argv[2])))
