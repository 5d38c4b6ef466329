"""Farm state that stays true: a session that ended in a fatal alert, was deleted or was
consumed resumes nowhere, at each server's defaults and through faults.

A real client (Python's ssl over MemoryBIO) ends a connection with a record whose last byte it
flipped: the server answers bad_record_mac, a fatal alert, and RFC 5246 7.2.2 says the
session must not resume. Stock nginx with its shared cache, and Apache with a shared cache,
drop it; a farm must drop it on every node.
"""

import os
import signal
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import tlsfarm  # noqa: E402
from farm_test import VERSIONS, FarmTestCase  # noqa: E402

# How long a session that ended in a fatal alert may still resume somewhere.
WITHDRAWN_WITHIN = 1.0


def env(cache, **extra):
    """The preload's variables: TLS 1.3 with stateful tickets, which go through the cache."""
    return {"TLSCACHE_ADDR": cache.addr, "TLSCACHE_TICKETS": "off", **extra}


class CoherenceTestCase(FarmTestCase):
    def redis_cache(self, extra=()):
        self.redis = self.farm.redis()
        return self.farm.cache(store=f"redis://127.0.0.1:{self.redis.port}", extra=extra)

    @staticmethod
    def resumes(client, session, ip, port):
        """Whether `client` (whose context `session` is of) resumes `session` on ip:port."""
        client.session = session
        return client.connect(ip, port)[0]

    def assert_resumes_nowhere(self, client, targets, label):
        """Within WITHDRAWN_WITHIN seconds `client`'s newest session resumes on none of
        `targets` (ip, port), and then goes on resuming nowhere."""
        session = client.session
        start = time.monotonic()
        for ip, port in targets:
            while self.resumes(client, session, ip, port):
                self.assertLess(time.monotonic() - start, WITHDRAWN_WITHIN,
                                f"{label}: still resumed on {ip}:{port}")
                time.sleep(0.02)
        took = time.monotonic() - start
        for _ in range(2):
            for ip, port in targets:
                self.assertFalse(self.resumes(client, session, ip, port),
                                 f"{label}: resumed again on {ip}:{port}")
        client.session = session
        self.report(f"{label}: resumes nowhere within {took * 1000:.0f} ms")

    def assert_fatal_alert_ends_the_session_everywhere(self, port, lb, label, server_name=None,
                                                       cert=None):
        """For each TLS version: a session made on node 1 resumes on node 2 (the farm shares
        it); ended there by a fatal alert, it resumes nowhere (node to node, and through the
        balancer); one made on node 1 and ended by a fatal alert on node 1 itself, nowhere
        either; one that ended cleanly still resumes everywhere."""
        nodes = [(ip, port) for ip in tlsfarm.NODE_IPS]
        targets = nodes + [("127.0.0.1", lb)] * 3
        for name, version in VERSIONS.items():
            with self.subTest(label, version=name):
                # Made on node 1, resumed on node 2, where it ends in a fatal alert.
                client = tlsfarm.Client(version, no_tickets=True, server_name=server_name)
                if cert:
                    client.context.load_cert_chain(*cert)
                self.assertFalse(client.connect(nodes[0][0], port)[0])
                self.assertTrue(client.end_with_fatal_alert(nodes[1][0], port),
                                f"{label} {name}: not shared to begin with")
                self.assert_resumes_nowhere(client, targets,
                                            f"{label} {name}, ended on another node")
                # Made and ended on the same node, through the balancer.
                client.session = None
                client.connect("127.0.0.1", lb)
                client.end_with_fatal_alert("127.0.0.1", lb)
                self.assert_resumes_nowhere(client, targets, f"{label} {name}, through the balancer")
                # Sessions that ended cleanly still resume on every other node (each offered
                # once: a TLS 1.3 ticket is used once).
                for ip, _ in nodes[1:]:
                    clean = tlsfarm.Client(version, no_tickets=True, server_name=server_name)
                    if cert:
                        clean.context.load_cert_chain(*cert)
                    clean.connect(nodes[0][0], port)
                    self.assertTrue(self.resumes(clean, clean.session, ip, port),
                                    f"{label} {name}: a clean session did not resume on {ip}")


class FatalAlertTest(CoherenceTestCase):
    """At each server's defaults: the session ends everywhere, its near-cache copies and the
    servers' own caches included."""

    def nginx_farm(self, cache, **options):
        port, nodes = self.farm.on_every_node(
            lambda ip, port, name: self.farm.nginx(ip, port, name, env=env(cache), **options))
        return port, self.farm.haproxy(port)

    def test_nginx_at_its_default_session_cache(self):
        # nginx's default `ssl_session_cache none`: OpenSSL keeps no session itself, and its
        # cache "size" of 1 must not pass for a full cache.
        cache = self.redis_cache()
        port, lb = self.nginx_farm(cache)
        self.assert_fatal_alert_ends_the_session_everywhere(port, lb, "nginx, no session cache")

    def test_nginx_with_its_shared_cache(self):
        cache = self.redis_cache()
        port, lb = self.nginx_farm(cache, shared_cache=True)
        self.assert_fatal_alert_ends_the_session_everywhere(port, lb, "nginx, shared cache")

    def test_haproxy_with_its_own_cache(self):
        cache = self.redis_cache()
        port, _ = self.farm.on_every_node(
            lambda ip, port, name: self.farm.haproxy_tls(ip, port, name, env=env(cache)))
        lb = self.farm.haproxy(port)
        self.assert_fatal_alert_ends_the_session_everywhere(port, lb, "HAProxy")

    def test_tlscache_tls_server(self):
        cache = self.redis_cache()
        port = self.farm.nodes(tlscache=f"addr={cache.addr};sid_ctx=farm")
        lb = self.farm.haproxy(port)
        self.assert_fatal_alert_ends_the_session_everywhere(port, lb, "tlscache-tls-server")

    def test_a_full_internal_cache_evicts_without_deleting_and_still_ends_fatal_sessions(self):
        # OpenSSL's own cache holds 4 sessions here: making more evicts the oldest, which
        # stays good for the farm; a fatal alert still ends a session everywhere.
        cache = self.redis_cache()
        port = self.farm.nodes(tlscache=f"addr={cache.addr};sid_ctx=farm",
                               extra=("--internal_cache_size=4",))
        lb = self.farm.haproxy(port)
        for name, version in VERSIONS.items():
            with self.subTest(version=name):
                first = tlsfarm.Client(version, no_tickets=True)
                first.connect(tlsfarm.NODE_IPS[0], port)
                evicting = tlsfarm.Client(version, no_tickets=True)
                for _ in range(8):
                    evicting.session = None
                    evicting.connect(tlsfarm.NODE_IPS[0], port)
                self.assertTrue(self.resumes(first, first.session, tlsfarm.NODE_IPS[1], port),
                                f"{name}: a session evicted from node 1's own cache left the farm")
        self.assert_fatal_alert_ends_the_session_everywhere(port, lb, "a full internal cache")

    def test_an_sni_selected_server_block_with_client_certificates(self):
        # The session is made through the block SNI selects, which asks for a client
        # certificate: the farm keeps it under a key bound to that block's requirements, and
        # its deletion (made through the default block's context, as OpenSSL names it) must
        # hit that key.
        cache = self.redis_cache()
        cert, key, ca = self.farm.issue("client", ca_name="client-ca")
        block = f"ssl_verify_client on; ssl_client_certificate {ca}; ssl_session_tickets off;"
        port, nodes = self.farm.on_every_node(
            lambda ip, port, name: self.farm.nginx(ip, port, name, env=env(cache),
                                                   shared_cache=True,
                                                   sni_blocks={"mtls.farm.test": block}))
        for name, version in VERSIONS.items():
            with self.subTest(version=name):
                tlsfarm.redis_call(self.redis.port, b"FLUSHDB")
                client = tlsfarm.Client(version, no_tickets=True, server_name="mtls.farm.test")
                client.context.load_cert_chain(cert, key)
                _, body, _ = client.connect(tlsfarm.NODE_IPS[0], port)
                self.assertIn("sni mtls.farm.test SUCCESS", body)
                self.assertTrue(client.connect(tlsfarm.NODE_IPS[0], port)[0],
                                f"{name}: the block's own cache did not resume it")
                live = self.live_sessions()
                self.assertGreater(live, 0)
                client.end_with_fatal_alert(tlsfarm.NODE_IPS[0], port)
                # The entry the farm kept it under is gone: the deletion named the right key.
                # (TLS 1.2: the session resumed is the one that ended; TLS 1.3: the ticket
                # the resumption brought, stored then deleted.)
                expected = live - 1 if version == ssl.TLSVersion.TLSv1_2 else live
                deadline = time.monotonic() + WITHDRAWN_WITHIN
                while self.live_sessions() != expected:
                    self.assertLess(time.monotonic(), deadline,
                                    f"{name}: {self.live_sessions()} live entries, not {expected}")
                    time.sleep(0.02)
                dead = client.session
                for ip in tlsfarm.NODE_IPS:
                    self.assertFalse(self.resumes(client, dead, ip, port), f"{name}: resumed on {ip}")

    def live_sessions(self):
        """Entries of the default namespace in Redis that hold a session (not a deletion)."""
        keys = tlsfarm.redis_call(self.redis.port, b"KEYS", b"tlscache:default:*")
        return sum(1 for key in keys
                   if int(tlsfarm.redis_call(self.redis.port, b"STRLEN", key)) > 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
