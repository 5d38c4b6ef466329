"""FarmTestCase: the base of the farm tests: a Farm per test (its logs printed when the test
fails), a figure reporter, and the resumption checks every farm test makes with real clients
at the defaults."""

import ssl
import time
import unittest

from tlsfarm import clients
from tlsfarm.farm import Farm
from tlsfarm.resp import redis_call
from tlsfarm.servers import NODE_IPS

RECONNECTS = 200
VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class FarmTestCase(unittest.TestCase):
    def setUp(self):
        self.farm = Farm()

    def tearDown(self):
        result = self._outcome.result
        failed = any(test is self for test, _ in result.failures + result.errors)
        self.farm.close(print_logs=failed)

    def report(self, line):
        print(f"\n  figure: {self.id().split('.')[-1]}: {line}", flush=True)

    def resumption(self, lb, label, connections=RECONNECTS, ip="127.0.0.1"):
        """Per TLS version, how many of `connections` connections resumed (the first, a full
        handshake, counted), for a client that comes back at once and offers each TLS 1.3
        ticket once. Every connection of a test's farm counts: nothing warms it up first."""
        resumed = {}
        for name, version in VERSIONS.items():
            client = clients.Client(version, single_use=True)
            resumed[name] = clients.resumed_reconnects(client, ip, lb, connections - 1)
            self.report(f"{name} {label}: {resumed[name]} of {connections} connections resumed")
        return resumed

    def assert_every_reconnect_resumes(self, lb, label, ip="127.0.0.1"):
        """At least 199 of 200 connections resume, each TLS version: every one after the
        first."""
        for name, resumed in self.resumption(lb, label, ip=ip).items():
            self.assertGreaterEqual(resumed, RECONNECTS - 1, name)

    def assert_immediate_reconnects_resume(self, lb, reconnects=1000):
        """A client that reconnects at once, `reconnects` times a TLS version: all but one
        resume (its session reached the farm before it came back)."""
        for name, version in VERSIONS.items():
            resumed = clients.resumed_reconnects(clients.Client(version, single_use=True),
                                                 "127.0.0.1", lb, reconnects)
            self.report(f"{name}: {resumed} of {reconnects} immediate reconnects resumed")
            self.assertGreaterEqual(resumed, reconnects - 1, name)

    def assert_curl_resumes_every_reconnect(self, port, label, versions=("1.2", "1.3")):
        """Debian's curl, 20 URLs, one connection each: all but the first resume."""
        for version in versions:
            marks = clients.curl_resumptions(port, version)
            self.report(f"curl TLS {version} {label}: {marks} ({marks.count('r')} of "
                        f"{len(marks) - 1} reconnects resumed)")
            self.assertEqual(marks, "." + "r" * (len(marks) - 1), f"TLS {version}")

    def cached_farm(self, extra=(), config=""):
        """redis-server, tlscache-server on it, three freshly started nodes with tlscache at
        the plugin's defaults (plus `config`), HAProxy."""
        self.redis = self.farm.redis()
        cache = self.farm.cache(store=f"redis://127.0.0.1:{self.redis.port}")
        port = self.farm.nodes(tlscache=f"addr={cache.addr};sid_ctx=farm-test{config}",
                               extra=extra)
        return cache, port, self.farm.haproxy(port)

    def issue(self, port, version, session):
        """A full handshake with s_client on the first node of a cached farm, its session
        saved to `session`; returns once the cache holds the session that the client will
        offer (the node stores in the background)."""
        self.assertIn("New,", clients.s_client(NODE_IPS[0], port, version, sess_out=session))
        pattern = f"*:{clients.offered_id(session)}".encode()
        deadline = time.monotonic() + 10
        while not redis_call(self.redis.port, b"KEYS", pattern):
            self.assertLess(time.monotonic(), deadline, f"{version}: not stored within 10 s")
            time.sleep(0.02)
