"""Prometheus metrics of one gateway (its own registry, so tests can run several).

Labels carry outcomes and key ids only: never text, never tokens.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class GatewayMetrics:
    """Counters, gauges and histograms served at ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "veil_gateway_requests",
            "Sealed chat requests by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "veil_gateway_active_streams", "Streams being relayed now.", registry=self.registry
        )
        self.chunks = Counter("veil_gateway_chunks", "Sealed chunks sent.", registry=self.registry)
        self.first_token = Histogram(
            "veil_gateway_time_to_first_token_seconds",
            "From request received to first sealed delta sent.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.completion_tokens = Counter(
            "veil_gateway_completion_tokens",
            "Completion tokens relayed (from vLLM's usage).",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
