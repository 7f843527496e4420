"""Prometheus: what the master's `/metrics` answers, in the text exposition format.

Owns: wsgid's own metrics as `prometheus_client` metric families, made from the totals
(stats.py) at each scrape, and the text of one scrape, with the application's
multiprocess metrics (app_metrics.py) merged in when wsgid manages their directory.

| metric | type | what |
| --- | --- | --- |
| `wsgid_workers{state}` | gauge | workers booting, idle, busy (a request in the app), stopping |
| `wsgid_requests_in_flight` | gauge | requests in the app now |
| `wsgid_requests_total{status_class}` | counter | responses by class, 1xx to 5xx |
| `wsgid_request_duration_seconds` | histogram | time in the app, per request |
| `wsgid_worker_restarts_total{cause}` | counter | exit, timeout, max_requests, memory |
| `wsgid_log_events_total{level}` | counter | error-log events, by level |
| `wsgid_listen_backlog` | gauge | connections waiting in the TCP listeners' accept queues |

`prometheus_client` (50 ms to import) is imported by the master at its first scrape, so a
server without `metrics_bind` never loads it, and the workers never use it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector

from wsgid import scoreboard as sb
from wsgid.stats import RESTART_CAUSES, Snapshot

# The classic text format, which every Prometheus and scraper reads (prometheus_client 0.22
# and later label the same text version=1.0.0, which older servers do not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Wsgid:
    """A collector of one scrape's totals (prometheus_client calls `collect`)."""

    def __init__(self, totals: Snapshot, backlog: int | None) -> None:
        self.totals = totals
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        now = self.totals
        workers = GaugeMetricFamily(
            "wsgid_workers",
            "Worker processes by state: booting, idle, busy (a request in the app), stopping.",
            labels=["state"],
        )
        for state, count in now.states.items():
            workers.add_metric([state], count)
        yield workers
        yield GaugeMetricFamily(
            "wsgid_requests_in_flight", "Requests in the application now.", value=now.active
        )
        classes = [0] * 5
        for index, count in enumerate(now.codes):  # index 0 is status 100
            classes[index // 100] += count
        requests = CounterMetricFamily(
            "wsgid_requests",
            "Responses sent, by status class (refusals of malformed requests included).",
            labels=["status_class"],
        )
        for index, count in enumerate(classes):
            requests.add_metric([f"{index + 1}xx"], count)
        yield requests
        cumulative, buckets = 0, []
        for bound, count in zip((*sb.DURATION_BUCKETS, float("inf")), now.buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "wsgid_request_duration_seconds",
            "Time from the request entering the application to its response sent.",
            buckets=buckets,
            sum_value=now.duration_us / 1e6,
        )
        restarts = CounterMetricFamily(
            "wsgid_worker_restarts",
            "Workers replaced, by cause: exit (it died), timeout, max_requests, memory.",
            labels=["cause"],
        )
        for cause in RESTART_CAUSES:
            restarts.add_metric([cause], now.restarts[cause])
        yield restarts
        logs = CounterMetricFamily(
            "wsgid_log_events", "Error-log events by level.", labels=["level"]
        )
        for level, count in zip(sb.LOG_LEVELS, now.logs, strict=True):
            logs.add_metric([level], count)
        yield logs
        if self.backlog is not None:
            yield GaugeMetricFamily(
                "wsgid_listen_backlog",
                "Connections waiting in the TCP listeners' accept queues.",
                value=self.backlog,
            )


def exposition(totals: Snapshot, backlog: int | None, app_dir: str | None) -> bytes:
    """The text of one scrape: wsgid's metrics, then the app's from `app_dir` (None: none)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Wsgid(totals, backlog))
    if app_dir is not None:
        MultiProcessCollector(registry, path=app_dir)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
