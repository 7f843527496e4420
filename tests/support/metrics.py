"""Reading wsgid's Prometheus side listener (`metrics_bind`) from a test."""

from __future__ import annotations

import http.client

from prometheus_client.parser import text_string_to_metric_families


def metric_sample(port: int, name: str, **labels: str) -> float | None:
    """The value of sample `name` with exactly `labels` in one scrape of
    127.0.0.1:`port`/metrics; None if the scrape has no such sample."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None
