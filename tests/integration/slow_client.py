"""A stream client that stops reading, run in a container on the service's compose network.

Usage: python slow_client.py HOST:PORT SECONDS. Connects with a tiny receive buffer (no proxy in
between), reads nothing until the service counts a slow consumer (or SECONDS pass), then drains
and prints one JSON line: how many messages it got and the close code and reason.
"""
import asyncio
import json
import re
import socket
import sys
import time
import urllib.request

import websockets


async def main(address: str, seconds: float) -> None:
    host, port = address.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    ws = await websockets.connect(f"ws://{address}/v1/stream?symbols=BTCUSDT", sock=sock, max_queue=1,
                                  max_size=2**24)
    deadline = time.monotonic() + seconds
    counted = False
    while time.monotonic() < deadline and not counted:
        await asyncio.sleep(0.5)
        metrics = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
        counted = float(re.search(r"^hftlive_slow_consumers_total (\S+)", metrics, re.M).group(1)) >= 1
    received, code, reason = 0, None, None
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 20)
            received += 1
    except websockets.ConnectionClosed as closed:
        code, reason = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, None)
    except asyncio.TimeoutError:
        pass
    print(json.dumps({"counted": counted, "received": received, "code": code, "reason": reason}))


asyncio.run(main(sys.argv[1], float(sys.argv[2])))
