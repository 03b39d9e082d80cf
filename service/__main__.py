"""`python -m service`: check the configuration (one line on stderr and exit 2 if wrong), then serve."""
from __future__ import annotations

import logging
import re
import sys

EXIT_CONFIG = 2
_TOKEN = re.compile(r"([?&]token=)[^&\s\"]*")


class QuietLog(logging.Filter):
    """Keep the stream's `?token=` out of uvicorn's lines, and the container's own health probes out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.args, tuple):
            return True
        args = record.args
        if (record.name == "uvicorn.access" and len(args) >= 3 and str(args[0]).startswith("127.0.0.1:")
                and args[2] in ("/readyz", "/healthz")):
            return False
        record.args = tuple(_TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in args)
        return True


def main() -> int:
    from .config import ConfigError, load_settings
    from .preflight import check_live_hftbacktest

    try:
        settings = load_settings()
        if settings.data_source == "hft_connector":
            check_live_hftbacktest()
    except ConfigError as exc:
        print(f"hftlive service: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    import uvicorn

    from .app import create_app

    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                            log_level=settings.log_level, ws="websockets-sansio")
    for name in ("uvicorn.error", "uvicorn.access"):   # configured by uvicorn.Config above
        logging.getLogger(name).addFilter(QuietLog())
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
