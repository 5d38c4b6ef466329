"""What a farm reports: the service's Prometheus metrics (parsed by the Prometheus client
library) and the counters a tlscache-tls-server node logs at exit."""

import json
import re
import sys

from tlsfarm.clients import http_get


def scrape(port):
    """{(name, frozenset(labels)): value} of every sample of the service's /metrics."""
    status, text = http_get(port, "/metrics")
    assert status == 200, status
    return parse_metrics(text)


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of every sample of Prometheus text (a /metrics page,
    a node_exporter textfile), through the Prometheus client library's own parser: it raises
    on text Prometheus would not take."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # Debian's python3-prometheus-client, under another interpreter
        sys.path.append("/usr/lib/python3/dist-packages")
        from prometheus_client.parser import text_string_to_metric_families
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def plugin_stats(process):
    """Stops a tlscache-tls-server node (SIGTERM) and returns the tlscache counters its
    processes logged at exit ("pid N tlscache: {json}"), added up over its processes."""
    process.stop()
    totals = {}
    for line in process.output().splitlines():
        if "tlscache: {" not in line:
            continue
        stats = json.loads(line.split("tlscache: ", 1)[1])
        for group, counters in stats.items():
            if isinstance(counters, dict):
                for name, count in counters.items():
                    key = f"{group}.{name}"
                    totals[key] = max(totals.get(key, 0), count) if "lag" in name else \
                        totals.get(key, 0) + count
    return totals


# The preload's stats line (plugins/openssl/plugin_stats.h: StatsLine), as TLSCACHE_STATS_INTERVAL
# has each worker write it. Its fields keep their order; new ones come after.
PRELOAD_STATS = re.compile(
    r"tlscache preload: pid (\d+): (\d+) contexts; sessions resumed (\d+), rejected (\d+), "
    r"stored (\d+); lookups (\d+) hits, (\d+) misses, (\d+) errors, (\d+) timeouts, "
    r"(\d+) skipped.* near cache (\d+) hits")
PRELOAD_STATS_FIELDS = ("contexts", "resumed", "rejected", "stored", "hits", "misses", "errors",
                        "timeouts", "skipped", "near")


def preload_stats(text):
    """{pid: {field: count}} of the last stats line each process wrote in `text` (a log)."""
    last = {}
    for match in PRELOAD_STATS.finditer(text):
        last[match.group(1)] = dict(zip(PRELOAD_STATS_FIELDS, map(int, match.groups()[1:])))
    return last
