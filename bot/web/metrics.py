"""Prometheus metrics of one app, in a CollectorRegistry of its own (never the global one).

Request counts and latency by route come from a middleware; the resolver's cache and
resolution counters are read from `Resolver.stats` at scrape time, so the hot path pays
nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from core.resolver import ResolverStats

# Resolver stat name -> (metric name, help)
RESOLVER_COUNTERS = {
    "hits": ("gamenight_stream_cache_hits", "Stream lookups answered from the cache."),
    "misses": ("gamenight_stream_cache_misses", "Stream lookups that needed a resolution."),
    "searches": ("gamenight_stream_searches", "YouTube searches run to match a track."),
    "extractions": ("gamenight_stream_extractions", "yt-dlp runs that produced a stream URL."),
    "failures": ("gamenight_stream_failures", "Resolutions that failed."),
}
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ResolverCollector(Collector):
    def __init__(self, read_stats: Callable[[], ResolverStats]) -> None:
        self._read_stats = read_stats

    def collect(self) -> Iterator[Metric]:
        stats = self._read_stats()
        for key, (name, documentation) in RESOLVER_COUNTERS.items():
            yield CounterMetricFamily(name, documentation, value=getattr(stats, key))


class WebMetrics:
    def __init__(self, read_resolver_stats: Callable[[], ResolverStats]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "gamenight_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "gamenight_http_request_duration_seconds",
            "Time to answer an HTTP request (to the last byte for streamed ones), by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "gamenight_http_rate_limited",
            "Requests refused by the per-client rate limit.",
            registry=self.registry,
        )
        self.registry.register(ResolverCollector(read_resolver_stats))
        # labels() hashes and locks on every call; the label sets are few, so keep the children.
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self._requests.labels(route, method, status)
        counter.inc()
        histogram = self._latency_children.get(route)
        if histogram is None:
            histogram = self._latency_children[route] = self._latency.labels(route)
        histogram.observe(seconds)

    def render(self) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def observe_request(self, request: web.Request, status: int, seconds: float) -> None:
        resource = request.match_info.route.resource
        # Unmatched paths share one label so a scanner cannot explode the series count.
        route = resource.canonical if resource is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        self.observe(route, method, status, seconds)
