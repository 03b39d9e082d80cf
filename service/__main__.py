"""`python -m service`: check the configuration and the listening address (one line on stderr and exit 2 if wrong),
then serve."""
from __future__ import annotations

import errno
import functools
import gc
import logging
import re
import socket
import sys
from urllib.parse import quote, quote_plus

from .config import ConfigError, Settings, load_settings, retired_settings
from .preflight import check_live_hftbacktest

EXIT_CONFIG = 2
MASK = "***"
LOGGED_PATH_CHARS = 200   # of a request's path in the access log (the request line may have up to 16 KiB)
# An Authorization header's value, as a debug line ("authorization: Bearer x") or in a repr ((b'authorization', b'x')).
_AUTHORIZATION = re.compile(r"(authorization['\"]?\s*[:,=]\s*(?:b?['\"])?)[^'\"\r\n]+", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[^\s'\"]+", re.IGNORECASE)
_QUERY_TOKEN = re.compile(r"(token=)[^&\s'\"#]*", re.IGNORECASE)   # the stream's ?token=, in a URL or a raw query
_REMEDIES = {
    errno.EADDRINUSE: ("address already in use", "stop what holds the port, or set PORT to a free one"),
    errno.EADDRNOTAVAIL: ("address not available", "set HOST to an address of this machine (0.0.0.0: all of them)"),
    errno.EACCES: ("permission denied", "set PORT to 1024 or above, or allow this user to bind low ports"),
}
_ELSE = "set HOST and PORT to an address of this machine and a free port"


@functools.cache
def spellings(secret: str) -> tuple[str, ...]:
    """How a secret can appear in a line: as is, escaped in a repr, or URL-encoded; longest first."""
    escaped = secret.replace("\\", "\\\\")
    forms = {secret, escaped, escaped.replace("'", "\\'"), escaped.replace('"', '\\"'),
             quote(secret, safe=""), quote(secret), quote_plus(secret)}
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with the given secrets, any bearer credential or Authorization value, and any `token=` value masked."""
    for secret in secrets:
        for form in spellings(secret):
            text = text.replace(form, MASK)
    text = _AUTHORIZATION.sub(rf"\g<1>{MASK}", text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    return _QUERY_TOKEN.sub(rf"\g<1>{MASK}", text)


class Redact(logging.Formatter):
    """Wraps a handler's formatter: masks the finished line, traceback included, whatever logger or level made it.

    A formatter, not a filter: a filter sees a record before formatting, not the line that is written."""

    def __init__(self, inner: logging.Formatter, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record), self.secrets)


def handlers() -> list[logging.Handler]:
    """Every handler a record can reach now: root's, every named logger's, and logging's last resort."""
    found = list(logging.getLogger().handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            found.extend(logger.handlers)
    if logging.lastResort is not None:
        found.append(logging.lastResort)
    return list(dict.fromkeys(found))


def guard_logs(token: str | None) -> None:
    """Mask tokens in every handler's output; call it once logging is configured (after uvicorn.Config)."""
    secrets = (token,) if token else ()
    for handler in handlers():
        inner = handler.formatter
        if isinstance(inner, Redact):
            inner = inner.inner
        handler.setFormatter(Redact(inner or logging.Formatter(), secrets))


class QuietLog(logging.Filter):
    """Keep the container's own health probes out of the access log, and a client's long path short in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and record.name == "uvicorn.access" and len(args) >= 3):
            return True
        if str(args[0]).startswith("127.0.0.1:") and args[2] in ("/readyz", "/healthz"):
            return False
        path = str(args[2])
        if len(path) > LOGGED_PATH_CHARS:
            record.args = (*args[:2], f"{path[:LOGGED_PATH_CHARS]}…({len(path)} characters)", *args[3:])
        return True


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """The service's socket, bound and listening now: before the source starts (uvicorn binds only after it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen()   # uvicorn listens again with its own backlog
    except OSError as exc:
        sock.close()
        reason, remedy = _REMEDIES.get(exc.errno, ((exc.strerror or str(exc)).lower(), _ELSE))
        if isinstance(exc, socket.gaierror):
            remedy = "set HOST to a name this machine resolves, or an address of it"
        raise ConfigError(f"cannot listen on {address(host, port)}: {reason}; {remedy}") from None
    return sock


def serve(settings: Settings, sock: socket.socket) -> None:
    """Run the app on `sock` until a signal stops it."""
    from .app import create_app
    from .server import build_server

    app = create_app(settings)
    server = build_server(app, settings.host, settings.port, settings.log_level,
                          max_lag_s=settings.client_max_lag_s, request_timeout_s=settings.http_request_timeout_s,
                          goodbye=app.state.service.goodbye)
    # Building the server has configured logging: mask tokens on every handler, keep probes out of the access log.
    guard_logs(settings.api_token.get_secret_value() if settings.api_token is not None else None)
    logging.getLogger("uvicorn.access").addFilter(QuietLog())
    # Given a socket, uvicorn leaves this line to whoever bound it.
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s (Press CTRL+C to quit)",
                                            address(settings.host, settings.port))
    # What was built so far (FastAPI, pydantic, the routes, the app) lives as long as the process: out of the
    # garbage collector's reach, a full collection walks only what came after, not the whole heap (milliseconds
    # in which the event loop serves no one).
    gc.freeze()
    server.run(sockets=[sock])


def main() -> int:
    try:
        settings = load_settings()
        for line in retired_settings():
            print(f"hftlive service: {line}", file=sys.stderr)
        if settings.data_source == "hft_connector":
            check_live_hftbacktest()
        sock = listen(settings.host, settings.port)
    except ConfigError as exc:
        print(f"hftlive service: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    with sock:
        serve(settings, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
