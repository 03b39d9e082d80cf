"""What the service writes to its log: no stream tokens, no noise from the container's own health probes."""
import logging

from service.__main__ import QuietLog


def record(name: str, message: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)


def test_stream_tokens_are_masked_in_connection_and_access_lines():
    ws = record("uvicorn.error", '%s - "WebSocket %s" [accepted]', ("172.18.0.1", 50000),
                "/v1/stream?symbols=BTCUSDT&token=s3cret")
    assert QuietLog().filter(ws)
    assert ws.getMessage() == """('172.18.0.1', 50000) - "WebSocket /v1/stream?symbols=BTCUSDT&token=***" [accepted]"""
    access = record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', "10.0.0.2:4000", "GET", "/?token=abc&x=1", "1.1", 200)
    assert QuietLog().filter(access) and "abc" not in access.getMessage() and "x=1" in access.getMessage()


def test_the_containers_own_probe_is_not_logged_but_others_are():
    probe = record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', "127.0.0.1:39000", "GET", "/readyz", "1.1", 200)
    remote = record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', "172.18.0.1:39000", "GET", "/readyz", "1.1", 200)
    assert not QuietLog().filter(probe)
    assert QuietLog().filter(remote)
