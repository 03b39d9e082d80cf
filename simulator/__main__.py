"""`python -m simulator`: a Bybit v5 public linear exchange simulator, configured by SIM_* environment variables.

    SIM_SYMBOLS=BTCUSDT,ETHUSDT SIM_TICK_SIZE=0.1,0.01 SIM_RATE=50 python -m simulator

Settings (defaults in brackets): SIM_SYMBOLS [BTCUSDT] (comma list); SIM_TICK_SIZE [0.1], SIM_LOT_SIZE [0.001],
SIM_PRICE [60000] (one value, or one per symbol); SIM_SEED [1]; SIM_RATE [50] order-book actions per second per
symbol (0 to 1,000,000); SIM_HOST [0.0.0.0], SIM_PORT [8090] for ws(s)://HOST:PORT/v5/public/linear and REST;
SIM_CONTROL_HOST [SIM_HOST], SIM_CONTROL_PORT [8091] for the test controls (a port of 0 picks a free one);
SIM_IDLE_TIMEOUT_S [600]; SIM_MAX_BACKLOG_BYTES [4194304] (1 MiB to 1 GiB: a client further behind is cut off);
SIM_TRADE_HISTORY [100000]; SIM_TLS_CERT and SIM_TLS_KEY (PEM files: serve wss/https); SIM_LOG_LEVEL [info].
Trading on /v5/trade and /v5/private: SIM_API_KEY with SIM_API_SECRET or SIM_API_SECRET_FILE (unset: auth refused);
SIM_MAKER_FEE_BPS [2], SIM_TAKER_FEE_BPS [5.5]; SIM_WALLET_USDT [100000].
A bad value prints one line on stderr and exits with status 2. Once listening, one line on stdout names the bound
addresses. See simulator/README.md for the control API.
"""
from __future__ import annotations

import asyncio
import logging
import sys

EXIT_CONFIG = 2


def main(argv: list[str]) -> int:
    if argv:
        if argv[0] in ("-h", "--help"):
            print(__doc__)
            return 0
        print(f"hftlive simulator: takes no arguments ({' '.join(argv)}); configure it with SIM_* variables, "
              "see --help", file=sys.stderr)
        return EXIT_CONFIG

    from .config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"hftlive simulator: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from .server import run

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # websockets logs every HTTP answer and handshake at INFO: too chatty for the REST and control ports.
    logging.getLogger("websockets").setLevel(logging.DEBUG if settings.log_level == "debug" else logging.WARNING)

    def announce(line: str) -> None:
        print(f"simulator listening: {line}", flush=True)

    try:
        asyncio.run(run(settings, announce))
    except OSError as exc:   # most often: the port is taken
        print(f"hftlive simulator: cannot listen: {exc.strerror or exc}; change SIM_PORT or SIM_CONTROL_PORT",
              file=sys.stderr)
        return 1
    except Exception:
        logging.getLogger("simulator").exception("the simulator failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
