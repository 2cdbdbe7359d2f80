"""Prometheus metrics of one app, in a CollectorRegistry of its own (never the global one).

Request counts and latency by route come from a middleware. They are plain numbers in dicts,
turned into Prometheus families at scrape time (`RequestCollector`): prometheus_client's own
Counter and Histogram take a lock per increment and walk the buckets in Python, which cost a
cache hit of `POST /song` about as much as the resolver's whole lookup. The middleware and the
scrape both run on the event loop, so nothing else touches the numbers. The resolver's cache
and resolution counters are read from `Resolver.stats` at scrape time, so the hot path pays
nothing for them.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

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
# Their `le` labels as prometheus_client writes them ("1.0", "+Inf").
LATENCY_LABELS = (*(repr(float(bound)) for bound in LATENCY_BUCKETS), "+Inf")


class ResolverCollector(Collector):
    def __init__(self, read_stats: Callable[[], ResolverStats]) -> None:
        self._read_stats = read_stats

    def collect(self) -> Iterator[Metric]:
        stats = self._read_stats()
        for key, (name, documentation) in RESOLVER_COUNTERS.items():
            yield CounterMetricFamily(name, documentation, value=getattr(stats, key))


class RequestCollector(Collector):
    """Requests answered by route, method and status, and their latency by route: exposed as
    prometheus_client's labelled Counter and Histogram would expose them (same names, samples
    and `_created` times), counted without their per-increment locks."""

    def __init__(self) -> None:
        # (route, method, status) -> [count, created]
        self.requests: dict[tuple[str, str, int], list[float]] = {}
        # route -> [observations per bucket (the last one +Inf)..., sum, created]
        self.latency: dict[str, list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        counted = self.requests.get(key)
        if counted is None:
            counted = self.requests[key] = [0.0, time.time()]
        counted[0] += 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = [0.0] * (len(LATENCY_BUCKETS) + 2) + [time.time()]
        # A bucket counts observations up to and including its bound (Prometheus' `le`).
        histogram[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        histogram[-2] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "gamenight_http_requests",
            "HTTP requests answered, by route, method and status.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), (count, created) in self.requests.items():
            requests.add_metric([route, method, str(status)], count, created=created)
        yield requests
        latency = HistogramMetricFamily(
            "gamenight_http_request_duration_seconds",
            "Time to answer an HTTP request (to the last byte for streamed ones), by route.",
            labels=["route"],
        )
        for route, histogram in self.latency.items():
            cumulative, buckets = 0.0, []
            for label, count in zip(LATENCY_LABELS, histogram, strict=False):
                cumulative += count
                buckets.append((label, cumulative))
            latency.add_metric([route], buckets, sum_value=histogram[-2])
            name = latency.name + "_created"
            latency.samples.append(Sample(name, {"route": route}, histogram[-1]))
        yield latency


class WebMetrics:
    def __init__(self, read_resolver_stats: Callable[[], ResolverStats]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = RequestCollector()
        self.registry.register(self._requests)
        self.rate_limited = Counter(
            "gamenight_http_rate_limited",
            "Requests refused by the per-client rate limit.",
            registry=self.registry,
        )
        self.registry.register(ResolverCollector(read_resolver_stats))

    def render(self) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def observe_request(self, request: web.Request, status: int, seconds: float) -> None:
        resource = request.match_info.route.resource
        # Unmatched paths share one label so a scanner cannot explode the series count.
        route = resource.canonical if resource is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        self._requests.observe(route, method, status, seconds)
