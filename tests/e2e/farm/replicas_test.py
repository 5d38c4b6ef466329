"""Several tlscache-server replicas on one Redis, as a Deployment runs them: a 3-node farm
whose plugin names every replica spreads its calls and streams over them, loses nothing when
one stops (SIGTERM, as in a rollout), and finds a replica added later (a scale-up) through
the service's --max_connection_age.

Real redis-server, tlscache-server replicas, tlscache-tls-server nodes on 127.0.0.11-13,
HAProxy round robin, and Python ssl clients that come back at once (each TLS 1.3 ticket used
once). The plugin runs at its defaults.
"""

import signal
import ssl
import threading
import time
import unittest

import tlsfarm
from tlsfarm.testcase import FarmTestCase

REPLICA_IPS = ["127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"]
# Four worker processes a node, as a pre-forking server runs: each its own connections and
# Follow stream.
WORKERS = ("--workers=4", "--threads=2")
PROCESSES = 3 * 4
# Each client's first connection is a full handshake: 2 of 500 is 0.4%.
MIN_CONNECTIONS = 500
NAME = "replicas.farm.test"


def seconds(value):
    return "never" if value is None else f"{value:.2f} s"


class Load:
    """Reconnects through the balancer until stopped, alternating a TLS 1.2 and a TLS 1.3
    client (each TLS 1.3 ticket once); counts what resumed and what failed. Every connection
    counts, the first of each client included."""

    def __init__(self, lb):
        self.lb = lb
        self.clients = [tlsfarm.Client(ssl.TLSVersion.TLSv1_2),
                        tlsfarm.Client(ssl.TLSVersion.TLSv1_3, single_use=True)]
        self.results, self.failed = [], []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        turn = 0
        while not self.stop_event.is_set():
            client = self.clients[turn % 2]
            turn += 1
            try:
                self.results.append(client.connect("127.0.0.1", self.lb)[0])
            except (OSError, ssl.SSLError) as error:
                self.failed.append(repr(error))

    def run_to(self, connections, timeout=60):
        """Goes on until `connections` were made in all (a busy machine makes fewer a second),
        so that each rate counts enough of them."""
        deadline = time.monotonic() + timeout
        while len(self.results) + len(self.failed) < connections and \
                time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        return sum(self.results), len(self.results), self.failed


class ReplicasTest(FarmTestCase):
    def replicas(self, ips, port=None, extra=()):
        """A replica on each of `ips`, one port (as a Service's pods), on the farm's Redis,
        each with /metrics."""
        port = port or tlsfarm.free_port(REPLICA_IPS)
        return [self.replica(ip, port, extra) for ip in ips]

    def replica(self, ip, port, extra=()):
        metrics = tlsfarm.free_port()
        replica = self.farm.cache(store=f"redis://127.0.0.1:{self.redis.port}", port=port, ip=ip,
                                  extra=[f"--metrics_listen=127.0.0.1:{metrics}", *extra])
        replica.metrics_port = metrics
        return replica

    @staticmethod
    def calls(replica):
        """The calls a replica has served: finished ones, and the Follow streams open."""
        samples = tlsfarm.scrape(replica.metrics_port)
        finished = sum(v for (name, _), v in samples.items() if name == "tlscache_requests_total")
        return finished + tlsfarm.value(samples, "tlscache_feed_followers", namespace="default")

    @staticmethod
    def followers(replica):
        """The Follow streams on `replica`: each node's follower and its other processes'
        upload-only streams."""
        samples = tlsfarm.scrape(replica.metrics_port)
        return (tlsfarm.value(samples, "tlscache_feed_followers", namespace="default") +
                tlsfarm.value(samples, "tlscache_feed_upload_streams", namespace="default"))

    def await_calls_on_every(self, replicas, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            counts = [self.calls(r) for r in replicas]
            if all(counts):
                return counts
            self.assertLess(time.monotonic(), deadline, f"calls per replica: {counts}")
            time.sleep(0.1)

    def test_a_replica_stopped_mid_run_costs_no_handshake(self):
        self.redis = self.farm.redis()
        replicas = self.replicas(REPLICA_IPS[:3])
        addr = ",".join(r.addr for r in replicas)
        port = self.farm.nodes(tlscache=f"addr={addr};sid_ctx=farm-test", extra=WORKERS)
        load = Load(self.farm.haproxy(port))
        try:
            counts = self.await_calls_on_every(replicas)
            time.sleep(1.0)
            # The replica with the most Follow streams: the stop moves them.
            victim = max(replicas, key=self.followers)
            streams = self.followers(victim)
            before = [self.followers(r) for r in replicas]
            stopped_at = time.monotonic()
            code = victim.stop(signal.SIGTERM)
            stop_seconds = time.monotonic() - stopped_at
            time.sleep(3.0)
            others = [r for r in replicas if r is not victim]
            moved = sum(self.followers(r) for r in others)
            load.run_to(MIN_CONNECTIONS)
        finally:
            resumed, total, failed = load.stop()
        near = remote = 0
        for process in self.farm.processes:
            if process.name.startswith("node"):
                stats = tlsfarm.plugin_stats(process)
                near += stats["near_cache.hits"]
                remote += stats["lookups.hits"]
        self.report(f"calls per replica {counts}, streams {before}; stopped the one with "
                    f"{streams:.0f} of {PROCESSES} streams in {stop_seconds:.2f} s (exit {code}); the others then followed "
                    f"{moved:.0f}; {total} connections, {len(failed)} failed, "
                    f"{resumed / total:.2%} resumed; sessions found in the near caches "
                    f"{near}, in the service {remote}")
        self.assertEqual(code, 0)
        self.assertEqual(failed, [])
        # Each moved before its old stream ended: its near cache kept every session.
        self.assertIn(f"{streams:.0f} of {streams:.0f} Follow streams moved to another replica",
                      victim.output())
        self.assertEqual(moved, PROCESSES)
        self.assertGreaterEqual(total, MIN_CONNECTIONS)
        self.assertGreaterEqual(resumed / total, 0.99)

    def test_a_replica_added_serves_calls_within_the_maximum_connection_age(self):
        # The name resolves as a headless Service's does: to the replicas that are up. A
        # 3 s --max_connection_age (the default is 5 min) shows a scale-up within a test.
        age = 3.0
        dns = tlsfarm.DnsServer()
        self.addCleanup(dns.close)
        self.redis = self.farm.redis()
        flags = [f"--max_connection_age={age:g}s", "--max_connection_age_grace=1s"]
        replicas = self.replicas(REPLICA_IPS[:3], extra=flags)
        port = replicas[0].port
        dns.set(NAME, REPLICA_IPS[:3])
        nodes = self.farm.nodes(
            tlscache=f"addr=dns://127.0.0.1:{dns.port}/{NAME}:{port};sid_ctx=farm-test",
            extra=WORKERS)
        load = Load(self.farm.haproxy(nodes))
        try:
            counts = self.await_calls_on_every(replicas)
            fourth = self.replica(REPLICA_IPS[3], port, flags)
            dns.set(NAME, REPLICA_IPS)
            added_at = time.monotonic()
            connected_after = serving_after = None
            while time.monotonic() - added_at < 4 * age and None in (connected_after,
                                                                      serving_after):
                elapsed = time.monotonic() - added_at
                if connected_after is None and \
                        tlsfarm.established(REPLICA_IPS[3], port) >= PROCESSES:
                    connected_after = elapsed
                if serving_after is None and self.calls(fourth) > 0:
                    serving_after = elapsed
                time.sleep(0.05)
            time.sleep(1.0)
            load.run_to(MIN_CONNECTIONS)
        finally:
            resumed, total, failed = load.stop()
        self.report(f"calls per replica {counts}; after the fourth was added "
                    f"(--max_connection_age={age:g}s), every process was connected to it in "
                    f"{seconds(connected_after)} and it served its first call in "
                    f"{seconds(serving_after)}; "
                    f"{total} connections, {len(failed)} failed, {resumed / total:.2%} resumed")
        self.assertIsNotNone(serving_after, "the fourth replica served nothing")
        # gRPC sends GOAWAY at the age give or take a tenth, and the name is resolved again:
        # every process connects to the new replica then.
        self.assertIsNotNone(connected_after)
        self.assertLessEqual(connected_after, 1.1 * age + 1.0)
        # Calls follow: lookups the near caches miss, and the streams, which move just after
        # their connection was told to go (each process's to the next replica in turn, so
        # one of the 12 lands on the new one in the first round all but 3% of the time, and
        # in two rounds all but 0.1%).
        self.assertLessEqual(serving_after, 2.4 * age + 1.0)
        self.assertEqual(failed, [])
        self.assertGreaterEqual(resumed / total, 0.99)


if __name__ == "__main__":
    unittest.main()
