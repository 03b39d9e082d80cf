"""What the service writes to its log: no tokens, whatever logger or level; no noise from the container's own probes."""
import io
import logging

import pytest

from service.__main__ import QuietLog, Redact, guard_logs, handlers, redact


def access(client: str, path: str, status: int) -> logging.LogRecord:
    """uvicorn's access-log record of a GET from `client`."""
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                             (client, "GET", path, "1.1", status), None)


@pytest.mark.parametrize("line, kept", [
    ('172.18.0.1:50000 - "WebSocket /v1/stream?symbols=BTCUSDT&token=s3cret" [accepted]', "symbols=BTCUSDT&token=***"),
    ('10.0.0.2:4000 - "GET /?token=s3cret&x=1 HTTP/1.1" 200', "/?token=***&x=1"),
    ("< authorization: Bearer s3cret", "< authorization: ***"),
    ("< Authorization: Basic dXNlcjpzM2NyZXQ=", "< Authorization: ***"),
    ("headers=[(b'host', b'x'), (b'authorization', b'Bearer s3cret')]", "(b'authorization', b'***')"),
    ("'query_string': b'symbols=BTCUSDT&token=s3cret', 'headers'", "b'symbols=BTCUSDT&token=***', 'headers'"),
    ("presented Bearer s3cret, refused", "Bearer *** refused"),
])
def test_tokens_are_masked_in_any_line(line, kept):
    assert redact(line) == redact(line, ("s3cret",))
    assert "s3cret" not in redact(line) and kept in redact(line), redact(line)


def test_the_api_token_is_masked_wherever_it_appears():
    secrets = ("p@ss/w'rd",)
    line = "ValueError: 'p@ss/w\\'rd' in b'p@ss/w\\'rd' and p%40ss%2Fw%27rd"
    assert redact(line, secrets) == "ValueError: '***' in b'***' and ***"


def test_every_handler_masks_the_finished_line_traceback_included():
    stream = io.StringIO()
    logger = logging.getLogger("hftlive.test.guard")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    before = {h: h.formatter for h in handlers()}   # guard_logs is process-wide: put pytest's own back after
    try:
        guard_logs("s3cret-token")
        guard_logs("s3cret-token")   # once per handler, however often it is called
        assert handler in before and isinstance(handler.formatter, Redact)
        assert not isinstance(handler.formatter.inner, Redact)
        try:
            raise RuntimeError("bad s3cret-token")
        except RuntimeError:
            logger.exception("debug %s", {"authorization": "s3cret-token"})
    finally:
        for h, formatter in before.items():
            h.setFormatter(formatter)
        logger.removeHandler(handler)
    assert "s3cret-token" not in stream.getvalue() and "RuntimeError: bad ***" in stream.getvalue()


def test_the_containers_own_probe_is_not_logged_but_others_are():
    assert not QuietLog().filter(access("127.0.0.1:39000", "/readyz", 200))
    assert QuietLog().filter(access("172.18.0.1:39000", "/readyz", 200))


def test_a_long_path_is_shortened_in_the_access_log():
    line = access("172.18.0.1:4000", "/v1/book?symbol=" + "A" * 15_000, 404)
    assert QuietLog().filter(line)
    message = line.getMessage()
    assert len(message) < 400 and "(15016 characters)" in message and message.endswith(" 404")
