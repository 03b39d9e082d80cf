"""`python -m service`: check the configuration (one line on stderr and exit 2 if wrong), then serve."""
from __future__ import annotations

import sys

EXIT_CONFIG = 2


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

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, ws="websockets-sansio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
