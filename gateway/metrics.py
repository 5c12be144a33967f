"""Prometheus metrics of one gateway (its own registry, so tests can run several).

They are served on their own listener (``VEIL_METRICS_HOST``/``VEIL_METRICS_PORT``), never on
the public port. Labels carry outcomes, refusal codes and cancel results only: never text,
keys, tokens or request ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Iterator


class GatewayMetrics:
    """Counters, gauges and histograms served at ``GET /metrics`` on the metrics listener."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "veil_gateway_requests",
            "Sealed chat requests by outcome (a refusal's code, or how the stream ended).",
            ["outcome"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "veil_gateway_refusals",
            "Requests refused before any stream, by code.",
            ["code"],
            registry=self.registry,
        )
        self.cancels = Counter(
            "veil_gateway_cancels",
            "Cancel requests by result (stopping, finished, or a refusal's code).",
            ["result"],
            registry=self.registry,
        )
        self.stalls = Counter(
            "veil_gateway_stalls",
            "Streams ended because the model server sent nothing for the backend idle timeout.",
            registry=self.registry,
        )
        self.client_stalls = Counter(
            "veil_gateway_client_stalls",
            "Streams aborted because the client read nothing for the client idle timeout.",
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "veil_gateway_active_streams", "Streams being relayed now.", registry=self.registry
        )
        self.connections = Gauge(
            "veil_gateway_connections", "Client connections open now.", registry=self.registry
        )
        self.connections_refused = Counter(
            "veil_gateway_connections_refused",
            "Connections closed on accept because the connection cap was reached.",
            registry=self.registry,
        )
        self.header_timeouts = Counter(
            "veil_gateway_header_timeouts",
            "Connections closed because a request head did not arrive in time.",
            registry=self.registry,
        )
        self.receipts_kept = Gauge(
            "veil_gateway_receipts_kept",
            "Final records of finished streams held for receipt fetches.",
            registry=self.registry,
        )
        self.chunks = ChunkCount(self.registry)
        self.first_token = Histogram(
            "veil_gateway_time_to_first_token_seconds",
            "From request received to first sealed delta sent.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.completion_tokens = Counter(
            "veil_gateway_completion_tokens",
            "Completion tokens stated by receipts.",
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "veil_gateway_prompt_tokens",
            "Prompt tokens stated by receipts.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


class ChunkCount(Collector):
    """Sealed chunks handed to client connections, and their bytes.

    ``veil_gateway_chunks_total`` and ``veil_gateway_sealed_bytes_total`` (the sealed streams'
    egress, HTTP framing aside). Plain numbers the relay adds to after each write (``add``),
    read when the metrics are served: a stream writes once a tick, and a ``Counter``'s lock
    and checks each time were a measurable share of the relay's work. The gateway runs on one
    event loop.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = 0
        self.bytes = 0
        registry.register(self)

    def add(self, chunks: int, size: int) -> None:
        """Count ``chunks`` chunks of ``size`` bytes in all as handed to a connection."""
        self.sent += chunks
        self.bytes += size

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The counts as counter families."""
        yield CounterMetricFamily("veil_gateway_chunks", "Sealed chunks sent.", value=self.sent)
        yield CounterMetricFamily(
            "veil_gateway_sealed_bytes",
            "Bytes of sealed chunks sent (HTTP framing aside).",
            value=self.bytes,
        )
