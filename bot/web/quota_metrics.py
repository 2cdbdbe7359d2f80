"""/metrics gauges for the Spotify call budget (core.spotify.quota), read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.web.metrics import WebMetrics
from core.spotify.quota import QuotaStatus


class QuotaCollector(Collector):
    def __init__(self, read_status: Callable[[], QuotaStatus]) -> None:
        self._read_status = read_status

    def collect(self) -> Iterator[Metric]:
        status = self._read_status()
        yield GaugeMetricFamily(
            "gamenight_spotify_calls_spent",
            "Spotify calls spent in the budget's rolling window (all processes, as last seen).",
            value=status.spent,
        )
        yield GaugeMetricFamily(
            "gamenight_spotify_calls_left",
            "Spotify calls left in the budget (SPOTIFY_DAILY_BUDGET minus spent).",
            value=status.left,
        )
        yield GaugeMetricFamily(
            "gamenight_spotify_quota_held_until",
            "Epoch seconds when Spotify's QUOTA_EXCEEDED hold ends; 0 when not held.",
            value=status.held_until or 0,
        )


def register_quota_metrics(metrics: WebMetrics, read_status: Callable[[], QuotaStatus]) -> None:
    metrics.registry.register(QuotaCollector(read_status))
