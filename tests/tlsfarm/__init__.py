"""tlsfarm: real processes and real clients for tlscache's farm tests, its benchmarks and its
demo, in small modules:

  supervisor  where the binaries are, stock servers or a skip, free ports, Process
  pki         a self-signed server certificate, certificates from named CAs
  servers     nginx, Apache mod_ssl and HAProxy with the configs a test gives them
  farm        Farm: the processes of one test and their directory, stopped at its end
  net         a TCP proxy that cuts or black-holes, a DNS server a test steers
  clients     Python ssl, curl and s_client with real habits; HTTP for /metrics
  metrics     the service's Prometheus metrics, a node's logged counters
  resp        a minimal Redis client
  testcase    FarmTestCase, the base of the farm tests

Import it with tests/ on PYTHONPATH (ctest, bench/run.sh and make demo set it). The names
below are the package's API, as `tlsfarm.Farm`, `tlsfarm.scrape`, ...
"""

from tlsfarm.clients import (REQUEST, Client, curl_resumptions, established, go_resumptions,
                             http_get,
                             offered_and_resumed, offered_id, resumed_reconnects,
                             resumption_rate, s_client)
from tlsfarm.farm import Farm
from tlsfarm.metrics import parse_metrics, plugin_stats, preload_stats, scrape, value
from tlsfarm.net import DnsServer, TcpProxy
from tlsfarm.pki import issue, self_signed
from tlsfarm.resp import redis_call, redis_values
from tlsfarm.servers import NODE_IPS
from tlsfarm.supervisor import (ASAN_RUNTIME, BIN_DIR, SANITIZER_REPORTS, Process,
                                built, free_port, preload_environment, require, wait_for_port)

__all__ = [
    "ASAN_RUNTIME", "BIN_DIR", "NODE_IPS", "REQUEST", "SANITIZER_REPORTS", "Client", "DnsServer",
    "Farm", "Process", "TcpProxy", "built", "curl_resumptions", "established", "free_port",
    "go_resumptions",
    "http_get", "issue", "offered_and_resumed", "offered_id", "parse_metrics", "plugin_stats", "preload_stats", "preload_environment", "redis_call",
    "redis_values", "require", "resumed_reconnects", "resumption_rate", "s_client", "scrape",
    "self_signed", "value", "wait_for_port",
]
