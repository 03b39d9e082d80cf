"""Bybit v5 authentication as pure functions: REST signatures, recv_window, and WebSocket `op: auth`."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

RECV_WINDOW = 5000   # ms, Bybit's default for X-BAPI-RECV-WINDOW
AHEAD_MS = 1000      # a timestamp may be at most this far ahead of the server's clock
Failure = tuple[int, str] | None   # (retCode, retMsg), or None when the request passes


def sign(secret: str, text: str) -> str:
    """Lowercase hex HMAC-SHA256, as Bybit signs everything."""
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def rest_signature(secret: str, timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """payload: the query string of a GET, the raw body of a POST."""
    return sign(secret, f"{timestamp}{api_key}{recv_window}{payload}")


def ws_signature(secret: str, expires: int) -> str:
    return sign(secret, f"GET/realtime{expires}")


def check_time(header: Mapping[str, Any], now_ms: int) -> Failure:
    """server_time - recv_window <= timestamp < server_time + 1000, else retCode 10002."""
    try:
        stamp = int(header.get("X-BAPI-TIMESTAMP", ""))
        window = int(header.get("X-BAPI-RECV-WINDOW", RECV_WINDOW))
    except (TypeError, ValueError):
        return 10001, "params error: X-BAPI-TIMESTAMP and X-BAPI-RECV-WINDOW must be integers (ms)"
    if now_ms - window <= stamp < now_ms + AHEAD_MS:
        return None
    return 10002, (f"invalid request, please check your server timestamp or recv_window param. "
                   f"req_timestamp[{stamp}],server_timestamp[{now_ms}],recv_window[{window}]")


def check_rest(keys: Mapping[str, str], header: Mapping[str, Any], payload: str, now_ms: int) -> Failure:
    """A signed REST request: its key (10003), its time (10002), its signature (10004)."""
    api_key = str(header.get("X-BAPI-API-KEY", ""))
    secret = keys.get(api_key)
    if secret is None:
        return 10003, "API key is invalid."
    late = check_time(header, now_ms)
    if late:
        return late
    stamp, window = str(header["X-BAPI-TIMESTAMP"]), str(header.get("X-BAPI-RECV-WINDOW", RECV_WINDOW))
    wanted = rest_signature(secret, stamp, api_key, window, payload)
    if not hmac.compare_digest(wanted, str(header.get("X-BAPI-SIGN", "")).lower()):
        return 10004, "error sign! origin_string[" + f"{stamp}{api_key}{window}{payload}]"
    return None


def check_ws(keys: Mapping[str, str], args: Any, now_ms: int) -> Failure:
    """`{"op":"auth","args":[api_key, expires_ms, signature]}`: expired 10001, key 10003, sign 10004."""
    if not (isinstance(args, list) and len(args) == 3 and all(isinstance(a, (str, int)) for a in args)):
        return 10001, "Params Error"
    api_key, expires, signature = (str(a) for a in args)
    secret = keys.get(api_key)
    if secret is None:
        return 10003, "API key is invalid."
    if not expires.isdigit() or int(expires) <= now_ms:
        return 10001, "Params Error"
    if not hmac.compare_digest(ws_signature(secret, int(expires)), signature.lower()):
        return 10004, "Invalid sign"
    return None
