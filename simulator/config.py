"""The simulator's settings, read from SIM_* environment variables; a mistake becomes one line saying what to fix."""
from __future__ import annotations

import ssl
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The same list and number parsing, and the same one-line error, as the service's settings.
from market.instrument import Instrument
from market.model import DEFAULT_PLACEMENT_TICKS
from market.settings import (
    ConfigError,  # noqa: F401 (load_settings raises it; __main__ catches it from here)
    check_per_symbol,
    instruments_for,
    load,
    log_level,
    pick,
    positive_numbers,
    symbol_list,
)

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
MAX_BACKLOG_BYTES = 4 * 2**20   # a client this far behind is cut off: 5 stalled clients hold 20 MiB, not ever more


class SimSettings(BaseSettings):
    """Every setting; the environment variable is SIM_ plus the field name in capitals."""

    # env_ignore_empty: `SIM_X=` (as compose passes an unset `${X:-}`) means "use the default".
    model_config = SettingsConfigDict(env_prefix="SIM_", extra="ignore", case_sensitive=False,
                                      env_ignore_empty=True)

    symbols: Annotated[tuple[str, ...], NoDecode] = Field(("BTCUSDT",), description="a comma list")
    tick_size: Annotated[tuple[float, ...], NoDecode] = Field((0.1,), description="one value, or one per symbol")
    lot_size: Annotated[tuple[float, ...], NoDecode] = Field((0.001,), description="one value, or one per symbol")
    price: Annotated[tuple[float, ...], NoDecode] = Field((60_000.0,), description="start; one, or one per symbol")
    seed: int = Field(1, description="same seed, same market")
    rate: float = Field(50.0, ge=0, le=1_000_000, description="order-book actions per second per symbol")
    placement_ticks: float = Field(
        DEFAULT_PLACEMENT_TICKS, ge=0.5, le=100_000,
        description="mean distance in ticks of a new limit order from the fair price; larger spreads the book "
                    "thin, its levels far apart and far from the touch")
    host: str = "0.0.0.0"
    port: int = Field(8090, ge=0, le=65535, description="WebSocket and REST; 0 picks a free port")
    control_host: str | None = Field(None, description="default: the same as HOST")
    control_port: int = Field(8091, ge=0, le=65535, description="the fault and test controls; 0 picks a free port")
    idle_timeout_s: float = Field(600.0, gt=0, description="close a connection whose client sent nothing this long")
    max_backlog_bytes: int = Field(MAX_BACKLOG_BYTES, ge=2**20, le=2**30,
                                   description="cut off a client this many bytes behind (what waits for it to read)")
    trade_history: int = Field(100_000, ge=1, le=10_000_000, description="trades kept per symbol for /control/trades")
    tls_cert: str | None = Field(None, description="PEM certificate chain: serve wss:// and https://")
    tls_key: str | None = Field(None, description="PEM private key for TLS_CERT")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Trading: one account. Without a key and secret, /v5/private and /v5/trade refuse every auth.
    api_key: str | None = Field(None, description="the account's API key")
    api_secret: SecretStr | None = Field(None, description="its secret (never shown, not even in errors)")
    api_secret_file: str | None = Field(None, description="a file holding the secret (compose secrets)")
    maker_fee_bps: float = Field(2.0, ge=-10, le=100, description="Bybit's linear default: 0.02%")
    taker_fee_bps: float = Field(5.5, ge=0, le=100, description="Bybit's linear default: 0.055%")
    wallet_usdt: float = Field(100_000.0, ge=0, description="the USDT wallet balance at start")

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> tuple[str, ...]:
        # Bybit's topics are case sensitive (orderbook.50.btcusdt is refused), so no upper-casing here.
        return symbol_list(value, upper=False)

    @field_validator("tick_size", "lot_size", "price", mode="before")
    @classmethod
    def _numbers(cls, value: Any, info: ValidationInfo) -> tuple[float, ...]:
        return positive_numbers(value, _env_name(str(info.field_name)))

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return log_level(value, LOG_LEVELS)

    @field_validator("tls_cert", "tls_key", "control_host", "api_key", "api_secret", "api_secret_file",
                     mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistent(self) -> SimSettings:
        check_per_symbol(len(self.symbols), {_env_name(name): getattr(self, name)
                                             for name in ("tick_size", "lot_size", "price")})
        for inst, price in zip(self.instruments, self.prices):
            if inst.tick(price) < 200:
                raise ValueError(f"SIM_PRICE {price:g} is under 200 ticks of {inst.tick_size:g} for {inst.symbol}; "
                                 "the model needs room for its levels below the price")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both SIM_TLS_CERT and SIM_TLS_KEY, or neither")
        if self.tls_cert is not None:
            self.tls_context()
        if self.api_secret_file is not None:
            if self.api_secret is not None:
                raise ValueError("set SIM_API_SECRET or SIM_API_SECRET_FILE, not both")
            try:
                with open(self.api_secret_file) as file:
                    self.api_secret = SecretStr(file.read().strip())
            except OSError as exc:
                raise ValueError(f"cannot read SIM_API_SECRET_FILE: {exc.strerror or exc}") from None
            if not self.api_secret.get_secret_value():
                raise ValueError("SIM_API_SECRET_FILE is empty; put the secret in it")
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("set SIM_API_KEY and SIM_API_SECRET (or SIM_API_SECRET_FILE), or neither")
        if self.port and self.port == self.control_port and self.bind_control == self.host:
            raise ValueError(f"SIM_PORT and SIM_CONTROL_PORT are both {self.port}; give them different ports")
        return self

    @property
    def bind_control(self) -> str:
        return self.control_host or self.host

    @property
    def api_keys(self) -> dict[str, str]:
        if self.api_key is None or self.api_secret is None:
            return {}
        return {self.api_key: self.api_secret.get_secret_value()}

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return instruments_for(self.symbols, self.tick_size, self.lot_size)

    @property
    def prices(self) -> tuple[float, ...]:
        return tuple(pick(self.price, i) for i in range(len(self.symbols)))

    def tls_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except OSError as exc:
            raise ValueError(f"cannot read SIM_TLS_CERT/SIM_TLS_KEY: {exc.strerror or exc}") from None
        except ssl.SSLError as exc:
            raise ValueError(f"SIM_TLS_CERT/SIM_TLS_KEY are not a PEM certificate and its key ({exc.reason})") from None
        return context


def _env_name(field: str) -> str:
    return f"SIM_{field.upper()}"


def load_settings(**overrides: Any) -> SimSettings:
    """Settings from the environment (overrides win); a ConfigError with one line when something is wrong."""
    return load(SimSettings, overrides, _env_name, hidden={"SIM_API_SECRET"})
