"""The service's configuration, read from the environment; a mistake becomes one line saying what to fix."""
from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from market.instrument import Instrument
from market.model import DEFAULT_PARAMS
from market.settings import (
    ConfigError,
    check_per_symbol,
    instruments_for,
    load,
    log_level,
    positive_numbers,
    symbol_list,
)

from .events import EXCHANGES, Exchange

CONNECTOR_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SOURCE_NAMES = {"hft_connector": "hft_connector", "live": "hft_connector", "mock": "mock"}
DEFAULT_EXCHANGE: Exchange = "bybit"
# The connector's control API on the compose network (its control_listen port, CONNECTOR_CONTROL_PORT).
DEFAULT_CONNECTOR_CONTROL_URL = "http://connector:8092"
CONTROL_OFF = "off"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
CHANNEL_KEYS = ("buffer_size", "max_bots")
WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")
HOST_NAME = re.compile(r"(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
BEARER_TOKEN = re.compile(r"[\x21-\x7e]+")   # printable ASCII, no space: what an Authorization header carries
STEP_RANGE = (1e-9, 1e9)                      # TICK_SIZE and LOT_SIZE
# Prices stay exact to the tick in a double up to ~1e15 ticks; 1e12 leaves every tick a distinct price.
MAX_BOOK_TICKS = 10**12
DAY_S = 86_400


def steps(value: Any, name: str) -> tuple[float, ...]:
    """TICK_SIZE or LOT_SIZE: positive numbers within STEP_RANGE."""
    numbers = positive_numbers(value, name)
    low, high = STEP_RANGE
    for number in numbers:
        if not low <= number <= high:
            raise ValueError(f"{number:g} is not between {low:g} and {high:g}")
    return numbers


# Settings that once existed: still set, they are named on stderr at start (never silently ignored).
RETIRED = {
    "LIVE_BOOK_TICKS": "the live source mirrors every level the connector sends, however far from the touch",
}


def retired_settings() -> list[str]:
    """One line per retired setting that is still set in the environment."""
    given = {name.upper() for name in os.environ}
    return [f"{name} is no longer used: {why}" for name, why in RETIRED.items() if name in given]


class UnambiguousEnv(EnvSettingsSource):
    """The environment, refusing a setting given under two spellings (names are case-insensitive) with two values."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        setting = {env_name.lower(): name for name, field in self.settings_cls.model_fields.items()
                   for _, env_name, _ in self._extract_field_info(field, name)}
        given: dict[str, dict[str, str]] = {}
        for variable, value in os.environ.items():
            name = setting.get(variable.lower())
            if name is not None and not (self.env_ignore_empty and value == ""):
                given.setdefault(name, {})[variable] = value
        clashes = []
        for name, spellings in given.items():
            if len(set(spellings.values())) > 1:
                shown = [v if name == "api_token" else f"{v}={spellings[v]!r}" for v in sorted(spellings)]
                both = "both" if len(shown) == 2 else "all"
                clashes.append(f"{', '.join(shown[:-1])} and {shown[-1]} {both} set {_env_name(name)}; keep one")
        if clashes:
            raise ConfigError(f"bad configuration: {'; '.join(clashes)}")
        return super()._load_env_vars()


class Settings(BaseSettings):
    """Every setting, named as its environment variable (case-insensitive, but given once)."""

    # env_ignore_empty: `VAR=` (as compose passes an unset `${VAR:-}`) means "use the default".
    # allow_inf_nan=False: every float is finite ("inf", "nan", "1e400" are refused).
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True,
                                      env_ignore_empty=True, allow_inf_nan=False)

    data_source: Literal["hft_connector", "mock"] = Field(
        "hft_connector", description="hft_connector (or live): hftbacktest's live bot; mock: the market model")
    # After data_source: its validator reads the source. Only the live source has one (default bybit).
    exchange: Exchange | None = Field(
        None, validate_default=True, description=f"live only: {', '.join(EXCHANGES)}; default {DEFAULT_EXCHANGE}")
    connector_name: str = "bybit_hft"
    # After data_source, like exchange: only the live source has a connector to ask.
    connector_control_url: str | None = Field(
        None, validate_default=True,
        description=f"live only: the connector's control API (GET /trading, POST /kill); "
                    f"default {DEFAULT_CONNECTOR_CONTROL_URL}; {CONTROL_OFF}: no trading view")
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        ("BTCUSDT",), validation_alias=AliasChoices("SYMBOL", "symbols"),
        description="one symbol, or a comma list")
    tick_size: Annotated[tuple[float, ...], NoDecode] = Field(
        (0.1,), description="one value for every symbol, or one per symbol")
    lot_size: Annotated[tuple[float, ...], NoDecode] = Field(
        (0.001,), description="one value for every symbol, or one per symbol")
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    api_token: SecretStr | None = Field(None, description="when set, /v1/* and the stream need it as a bearer token")

    ready_max_age_s: float = Field(10.0, gt=0, le=DAY_S, description="/readyz fails when a symbol's data is older")
    client_buffer: int = Field(1024, ge=16, le=1_000_000, description="messages a stream client may lag behind")
    client_max_lag_s: float = Field(10.0, ge=0.2, le=600, allow_inf_nan=False,
                                    description="seconds a stream client may lag behind before it is cut off (4008)")
    http_request_timeout_s: float = Field(10.0, ge=0.5, le=600, allow_inf_nan=False,
                                          description="an HTTP request must arrive whole within this")
    trade_history: int = Field(1000, ge=1, le=1_000_000, description="trades kept per symbol for /v1/trades")

    mock_event_rate: float = Field(200.0, gt=0, le=200_000, description="mock order-book actions per second per symbol")
    mock_seed: int | None = Field(None, ge=0, le=2**63 - 1,
                                  description="same seed, same event sequence; unset: a random seed")
    mock_price: float = Field(
        60_000.0, gt=0, description=f"the mock market's starting price: {DEFAULT_PARAMS.floor_ticks} ticks or more")

    hftbacktest_channel_config: str | None = Field(
        None, description="TOML with buffer_size / max_bots for hftbacktest's IPC channel")
    live_stale_after_s: float = Field(5.0, gt=0, le=DAY_S, description="no feed this long: state becomes stale")
    live_rebuild_after_s: float = Field(15.0, gt=0, le=DAY_S, description="no feed this long: the bot is rebuilt")
    live_trades_capacity: int = Field(1000, ge=1, le=1_000_000)

    record_dir: str | None = Field(
        None, description="record the feed here as hftbacktest .npz files (needs numpy); unset: no recording")
    record_rotate_s: float = Field(3600.0, ge=1, le=DAY_S, description="a new recording file after this long")
    record_rotate_events: int = Field(1_000_000, ge=100, le=100_000_000,
                                      description="a new recording file after this many rows")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, UnambiguousEnv(settings_cls), dotenv_settings, file_secret_settings

    @field_validator("port", "client_buffer", "trade_history", "mock_seed", "live_trades_capacity",
                     "record_rotate_events", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        # pydantic would take "8000.0", "1_024" or True as whole numbers.
        if isinstance(value, bool) or (isinstance(value, str) and not WHOLE_NUMBER.fullmatch(value)):
            raise ValueError(f"{value!r} is not a whole number")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        # Checked here, without a name lookup: uvicorn would resolve "999.1.1.1" as a name.
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        if HOST_NAME.fullmatch(value) and not value.rstrip(".").rsplit(".", 1)[-1].isdigit():
            return value
        raise ValueError(f"{value!r} is not an IP address or a host name")

    @field_validator("data_source", mode="before")
    @classmethod
    def _source(cls, value: Any) -> Any:
        if isinstance(value, str):
            name = value.strip().lower()
            if name not in SOURCE_NAMES:
                raise ValueError(f"unknown source {value!r}; use hft_connector (or live) or mock")
            return SOURCE_NAMES[name]
        return value

    @field_validator("exchange", mode="before")
    @classmethod
    def _exchange(cls, value: Any, info: ValidationInfo) -> Any:
        source = info.data.get("data_source")   # absent when DATA_SOURCE itself was refused
        if value is None or (isinstance(value, str) and not value.strip()):
            return DEFAULT_EXCHANGE if source == "hft_connector" else None
        name = str(value).strip().lower()
        if name not in EXCHANGES:
            raise ValueError(f"unknown exchange {value!r}; use {', '.join(EXCHANGES[:-1])} or {EXCHANGES[-1]}")
        if source == "mock":
            raise ValueError("EXCHANGE applies only to the live source (DATA_SOURCE=hft_connector); "
                             "unset it for DATA_SOURCE=mock")
        return name

    @field_validator("connector_control_url", mode="before")
    @classmethod
    def _control_url(cls, value: Any, info: ValidationInfo) -> Any:
        source = info.data.get("data_source")
        if value is None or (isinstance(value, str) and not value.strip()):
            return DEFAULT_CONNECTOR_CONTROL_URL if source == "hft_connector" else None
        text = str(value).strip()
        if text.lower() == CONTROL_OFF:
            return None
        if source == "mock":
            raise ValueError("the mock source has no connector; unset CONNECTOR_CONTROL_URL for DATA_SOURCE=mock")
        return check_control_url(text)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return log_level(value, LOG_LEVELS)

    @field_validator("connector_name")
    @classmethod
    def _connector(cls, value: str) -> str:
        if not CONNECTOR_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a connector name (letters, digits, _ . -; at most 64)")
        return value

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> tuple[str, ...]:
        return symbol_list(value, upper=True)

    @field_validator("tick_size", mode="before")
    @classmethod
    def _ticks(cls, value: Any) -> tuple[float, ...]:
        return steps(value, "TICK_SIZE")

    @field_validator("lot_size", mode="before")
    @classmethod
    def _lots(cls, value: Any) -> tuple[float, ...]:
        return steps(value, "LOT_SIZE")

    @field_validator("api_token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        # Only the empty string means "no token" (compose passes it for unset); the messages never show the token.
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str) or value == "":
            return value or None
        if not value.strip():
            raise ValueError("is set but blank; give a token, or leave it empty (or unset) for no authentication")
        if value != value.strip():
            raise ValueError("has whitespace before or after it; remove it (a bearer token cannot carry any)")
        if not BEARER_TOKEN.fullmatch(value):
            raise ValueError("may hold printable ASCII only, without spaces (as an HTTP header's bearer token)")
        return value

    @field_validator("hftbacktest_channel_config", mode="before")
    @classmethod
    def _channel_config(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return check_channel_config(str(value))

    @field_validator("record_dir", mode="before")
    @classmethod
    def _record_dir(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return check_record_dir(str(value).strip())

    @model_validator(mode="after")
    def _per_symbol(self) -> Settings:
        check_per_symbol(len(self.symbols), {"TICK_SIZE": self.tick_size, "LOT_SIZE": self.lot_size})
        if self.live_rebuild_after_s < self.live_stale_after_s:
            raise ValueError("LIVE_REBUILD_AFTER_S must not be shorter than LIVE_STALE_AFTER_S")
        if self.data_source == "mock":
            self._check_mock_price()
        return self

    def _check_mock_price(self) -> None:
        """The market model starts at MOCK_PRICE only if that is room for its levels, and few enough ticks to print."""
        price, floor = self.mock_price, DEFAULT_PARAMS.floor_ticks
        for inst in self.instruments:
            ticks = price / inst.tick_size
            if round(ticks) < floor:
                raise ValueError(
                    f"MOCK_PRICE={price:g} is {round(ticks):g} ticks of {inst.tick_size:g} for {inst.symbol}; "
                    f"the mock market needs at least {floor}: set MOCK_PRICE to {inst.price(floor):g} or more, "
                    "or a smaller TICK_SIZE")
            if ticks > MAX_BOOK_TICKS:
                raise ValueError(
                    f"MOCK_PRICE={price:g} is {ticks:g} ticks of {inst.tick_size:g} for {inst.symbol}; "
                    f"the book holds at most {MAX_BOOK_TICKS:g}: set MOCK_PRICE to "
                    f"{MAX_BOOK_TICKS * inst.tick_size:g} or less, or a larger TICK_SIZE")

    @property
    def source_kind(self) -> Literal["live", "mock"]:
        return "live" if self.data_source == "hft_connector" else "mock"

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return instruments_for(self.symbols, self.tick_size, self.lot_size)


def check_channel_config(path: str) -> str:
    """hftbacktest silently ignores a channel TOML it cannot parse (and then sizes shared memory for 200 bots)."""
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML ({exc})") from None
    for key, value in table.items():
        if key not in CHANNEL_KEYS:
            raise ValueError(f"{path}: unknown key {key!r}; hftbacktest reads {' and '.join(CHANNEL_KEYS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{path}: {key} must be a positive integer")
    return path


def check_control_url(url: str) -> str:
    """An http://host[:port][/path] URL (no lookup), without a trailing slash; the control API is plain HTTP."""
    like = f"like {DEFAULT_CONNECTOR_CONTROL_URL}, or {CONTROL_OFF} for no trading view"
    try:
        parts = urlsplit(url)
        parts.port   # raises on a port that is no number or out of range
    except ValueError:
        raise ValueError(f"is not a URL ({like})") from None
    if parts.scheme.lower() != "http":
        raise ValueError(f"must start with http:// (the connector's control API is plain HTTP; {like})")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user or password (the control API takes none)")
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not HOST_NAME.fullmatch(host) or host.rstrip(".").rsplit(".", 1)[-1].isdigit():
            raise ValueError(f"has no valid host ({like})") from None
    if parts.port == 0:
        raise ValueError(f"port 0 is no port ({like})")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"must not have a query or fragment ({like})")
    return url.rstrip("/")


def check_record_dir(path: str) -> str:
    """Recording fails at startup, not an hour in: the directory must take a file, and numpy must be there."""
    if importlib.util.find_spec("numpy") is None:
        raise ValueError("recording needs numpy, which this image lacks (service-mock has none); "
                         "use the service image, or unset RECORD_DIR")
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write to {path} ({exc.strerror}); mount a directory writable by uid "
                         f"{os.getuid()}, or unset RECORD_DIR") from None
    return path


def _env_name(field: str) -> str:
    return "SYMBOL" if field == "symbols" else field.upper()


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (overrides win); a ConfigError with one line when something is wrong."""
    return load(Settings, overrides, _env_name, hidden=("API_TOKEN",))
