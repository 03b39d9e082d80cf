"""Prometheus metrics of one app, in its own registry: events in and out, drops, feed lag, clients, source state."""
from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .events import Exchange, SourceState

# Fine below 2.5 ms, where the hops inside one host are.
HOP_BUCKETS = (0.000025, 0.00005, 0.0001, 0.00015, 0.0002, 0.00025, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015,
               0.002, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
HOPS = ("exchange_to_connector", "connector_to_bot", "bot_to_service", "connector_to_service")   # hops_of's order
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, source_kind: str, symbols: tuple[str, ...], info: dict[str, str],
                 exchange: Exchange | None = None) -> None:
        r = self.registry = CollectorRegistry()
        self.source_kind = source_kind
        self.events_in = Counter(
            "hftlive_events_in", "Events received from the source", ["symbol", "kind"], registry=r)
        self.events_out = Counter(
            "hftlive_events_out", "Messages sent to stream clients", registry=r)
        self.slow_consumers = Counter(
            "hftlive_slow_consumers",
            "Stream clients closed (4008): more than CLIENT_BUFFER messages or CLIENT_MAX_LAG_S behind",
            registry=r)
        self.dropped = Counter(
            "hftlive_events_dropped", "Messages discarded with the slow consumers that could not take them",
            registry=r)
        self.record_errors = Counter(
            "hftlive_record_write_errors",
            "Recording files that failed to write (once each; their rows are kept and retried)",
            registry=r)
        self.lost = Counter(
            "hftlive_feed_lost", "Events the source lost before they reached the service (a bot buffer overflowed)",
            ["symbol", "kind"], registry=r)
        self.clients = Gauge("hftlive_stream_clients", "Connected stream clients", registry=r)
        self.lag = Histogram(
            "hftlive_feed_lag_seconds", "Service receive time minus exchange time, per event",
            ["symbol"], buckets=LAG_BUCKETS, registry=r)
        self.hop = Histogram(
            "hftlive_hop_seconds",
            "Live source, per trade and book delta message (a delta carries its newest event's times), on this "
            "host's clock in microseconds except the first: exchange_to_connector = connector receive time minus "
            "exchange time (the exchange stamps milliseconds); connector_to_bot = when the bot process read it "
            "(iceoryx2 and the bot's drain); bot_to_service = service receive time minus that (the pipe between "
            "the two processes); connector_to_service = the two together",
            ["symbol", "hop"], buckets=HOP_BUCKETS, registry=r)
        self.send_delay = Histogram(
            "hftlive_send_delay_seconds",
            "Per write to a stream client: how long the oldest message in it waited in the client's queue "
            "(the event loop's delay and the client's socket)", buckets=HOP_BUCKETS, registry=r)
        self.event_age = Gauge(
            "hftlive_last_event_age_seconds", "Seconds since the symbol's last event (-1 before the first)",
            ["symbol"], registry=r)
        self.state = Enum(
            "hftlive_source_state", "State of the market-data source", ["source"],
            states=[s.value for s in SourceState], registry=r)
        Info("hftlive_service", "What this service serves", registry=r).info(
            {"source": source_kind, "exchange": exchange or "", "symbols": ",".join(symbols), **info})
        self.state.labels(source_kind).state(SourceState.STARTING.value)
        # Bound per symbol once: the hot path then skips the label lookup.
        self.deltas_in = {s: self.events_in.labels(s, "delta") for s in symbols}
        self.snapshots_in = {s: self.events_in.labels(s, "snapshot") for s in symbols}
        self.trades_in = {s: self.events_in.labels(s, "trade") for s in symbols}
        self.trades_lost = {s: self.lost.labels(s, "trade") for s in symbols}
        self.lag_of = {s: self.lag.labels(s) for s in symbols}
        self.hops_of = {s: tuple(self.hop.labels(s, hop) for hop in HOPS) for s in symbols} if source_kind == "live" else {}

    def set_state(self, state: SourceState) -> None:
        self.state.labels(self.source_kind).state(state.value)

    def on_slow(self, dropped: int) -> None:
        self.slow_consumers.inc()
        self.dropped.inc(dropped)

    def render(self) -> bytes:
        return generate_latest(self.registry)
