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
import threading
import time
import unittest

import tlsfarm
from tlsfarm.testcase import VERSIONS, FarmTestCase

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


class FaultCoherenceTest(CoherenceTestCase):
    """Faults between the farm's parts, each with a deletion inside their window. Two stock
    nginx (their shared caches, the preload at its defaults but stateful tickets), node A on
    one cache replica and node B on another, one Redis behind both. A session made on A is
    pushed to B (B resumes it); then the fault starts and the session ends in a fatal alert on
    A. Once the fault is over, the session resumes on no node, and sessions made after it
    resume on both."""

    RECOVERY = 20.0  # seconds a fault's recovery may take (a Sentinel failover the longest)

    def nginx_nodes(self, addr_a, addr_b, workers=1):
        """Node A and node B, each of whose workers has served a connection: each follows the
        namespace, so that what A stores is pushed to B. (A worker follows from its first
        connection on; here every worker is made to, for the pushes these tests are about.)"""
        port = tlsfarm.free_port(tlsfarm.NODE_IPS)
        nodes = [self.farm.nginx(ip, port, f"node-{label}",
                                 env={"TLSCACHE_ADDR": addr, "TLSCACHE_TICKETS": "off"},
                                 shared_cache=True, workers=workers)
                 for ip, label, addr in ((tlsfarm.NODE_IPS[0], "a", addr_a),
                                         (tlsfarm.NODE_IPS[1], "b", addr_b))]
        self.port = port
        for node in nodes:
            pids = set()
            for _ in range(200):
                _, body, _ = tlsfarm.Client(ssl.TLSVersion.TLSv1_2).connect(node.ip, port)
                pids.add(body.split()[3])
                if len(pids) == workers:
                    break
            self.assertEqual(len(pids), workers, f"{node.name}: not every worker served")
        return nodes

    def replica(self, store):
        metrics = tlsfarm.free_port()
        cache = self.farm.cache(store=store, extra=[f"--metrics_listen=127.0.0.1:{metrics}"])
        cache.metrics_port = metrics
        return cache

    def gaps(self, replica):
        return tlsfarm.value(tlsfarm.scrape(replica.metrics_port), "tlscache_feed_gaps_total")

    def await_gap(self, replica, gaps):
        """Until `replica` has told a follower of a gap since it counted `gaps`: subscribed
        again, it tells its followers what they missed."""
        deadline = time.monotonic() + self.RECOVERY
        while self.gaps(replica) <= gaps:
            self.assertLess(time.monotonic(), deadline, "no follower was told of the gap")
            time.sleep(0.05)

    def nodes_with_b_reaching_redis_through(self):
        """Nodes A and B, each on its own replica of one Redis; B's replica reaches Redis
        through a TcpProxy, which is returned with B's replica."""
        redis = self.farm.redis()
        proxy = tlsfarm.TcpProxy(redis.port)
        self.addCleanup(proxy.close)
        replica_a = self.replica(f"redis://127.0.0.1:{redis.port}")
        replica_b = self.replica(f"redis://127.0.0.1:{proxy.port}")
        self.nginx_nodes(replica_a.addr, replica_b.addr)
        return proxy, replica_b

    def await_followers(self, replica, count):
        """Until `count` processes follow the namespace through `replica` (a worker follows
        from its first connection on)."""
        deadline = time.monotonic() + 15
        while tlsfarm.value(tlsfarm.scrape(replica.metrics_port), "tlscache_feed_followers",
                            namespace="default") < count:
            self.assertLess(time.monotonic(), deadline, "the nodes did not follow")
            time.sleep(0.05)

    def deletion_inside(self, version, fault, label):
        """A session made on A and resumed on B; `fault()` starts; the session ends in a fatal
        alert on A. Returns the client, its newest session the dead one."""
        a, b = tlsfarm.NODE_IPS[0], tlsfarm.NODE_IPS[1]
        client = tlsfarm.Client(version, no_tickets=True)

        def pushed_then_fault():
            made = client.session
            self.assertTrue(self.resumes(client, made, b, self.port),
                            f"{label}: node B did not resume the session")
            client.session = made
            fault()

        client.end_with_fatal_alert(a, self.port, before_alert=pushed_then_fault)
        return client

    def assert_dead_everywhere_and_new_sessions_shared(self, version, client, label):
        a, b = tlsfarm.NODE_IPS[0], tlsfarm.NODE_IPS[1]
        dead = client.session
        start = time.monotonic()
        for ip in (a, b):
            while self.resumes(client, dead, ip, self.port):
                self.assertLess(time.monotonic() - start, self.RECOVERY,
                                f"{label}: the deleted session still resumes on {ip}")
                time.sleep(0.05)
        for _ in range(3):
            for ip in (a, b):
                self.assertFalse(self.resumes(client, dead, ip, self.port),
                                 f"{label}: the deleted session resumed again on {ip}")
        self.report(f"{label}: the deleted session resumes nowhere "
                    f"{time.monotonic() - start:.2f} s after the fault")
        fresh = tlsfarm.Client(version, no_tickets=True)
        deadline = time.monotonic() + self.RECOVERY
        while True:
            fresh.session = None
            fresh.connect(a, self.port)
            if self.resumes(fresh, fresh.session, b, self.port):
                break
            self.assertLess(time.monotonic(), deadline, f"{label}: new sessions do not travel")
            time.sleep(0.1)
        self.report(f"{label}: new sessions travel {time.monotonic() - start:.2f} s after the "
                    "fault")

    def test_a_replica_cut_off_from_redis_misses_a_deletion_and_its_followers_check(self):
        proxy, replica_b = self.nodes_with_b_reaching_redis_through()
        for name, version in VERSIONS.items():
            gaps = self.gaps(replica_b)
            client = self.deletion_inside(version, proxy.cut, f"cut {name}")
            cut_at = time.monotonic()
            # Meanwhile B's replica, its subscription broken, pauses its followers: the
            # deletion it cannot relay resumes on B no more, within a second.
            self.assert_resumes_nowhere(client, [(tlsfarm.NODE_IPS[1], self.port)],
                                        f"{name}: while node B's replica is cut off from Redis")
            time.sleep(max(0.0, 1.0 - (time.monotonic() - cut_at)))  # cut off for a second
            proxy.restore()
            self.assert_dead_everywhere_and_new_sessions_shared(
                version, client, f"{name}: node B's replica cut off from Redis for 1 s")
            self.await_gap(replica_b, gaps)

    def test_a_deletion_the_store_did_not_take_is_sent_again_until_it_stands(self):
        # Node A's replica is cut off from Redis when the session ends on A: the deletion
        # fails there, and only node A sending it again, once the path is back, ends the
        # session on B (whose replica never lost Redis and holds it in B's near cache).
        redis = self.farm.redis()
        proxy = tlsfarm.TcpProxy(redis.port)
        self.addCleanup(proxy.close)
        replica_a = self.replica(f"redis://127.0.0.1:{proxy.port}")
        replica_b = self.replica(f"redis://127.0.0.1:{redis.port}")
        self.nginx_nodes(replica_a.addr, replica_b.addr)
        for name, version in VERSIONS.items():
            client = self.deletion_inside(version, proxy.cut, f"cut {name}")
            time.sleep(1.0)  # the deletion fails, and fails again, for a second
            proxy.restore()
            self.assert_dead_everywhere_and_new_sessions_shared(
                version, client, f"{name}: node A's replica cut off from Redis for 1 s")

    def test_a_replica_whose_path_to_redis_goes_silent(self):
        # B's replica reaches Redis through a path that goes silent (no reset ever comes): its
        # subscription's PING goes unanswered (a quiet second, then two more), it pauses its
        # followers, and it connects again; the numbers show what it missed.
        proxy, replica_b = self.nodes_with_b_reaching_redis_through()
        gaps = self.gaps(replica_b)
        client = self.deletion_inside(ssl.TLSVersion.TLSv1_2, proxy.freeze, "silent Redis path")
        dead = client.session
        start = time.monotonic()
        while self.resumes(client, dead, tlsfarm.NODE_IPS[1], self.port):
            self.assertLess(time.monotonic() - start, 5.0, "B's near cache went on answering")
            time.sleep(0.05)
        client.session = dead
        self.report(f"node B's replica paused its followers {time.monotonic() - start:.2f} s "
                    "after its path to Redis went silent")
        self.assert_dead_everywhere_and_new_sessions_shared(
            ssl.TLSVersion.TLSv1_2, client, "TLSv1.2: node B's replica's path to Redis went silent")
        self.await_gap(replica_b, gaps)

    def test_a_node_whose_path_to_its_replica_goes_silent(self):
        # Node B reaches its replica through a path that goes silent: no reset, no close, what
        # it carries lost (a middlebox that dropped the connection's state). B's near cache
        # stops answering within a second of hearing nothing (the deletion may be waiting on
        # the path); gRPC's keepalive pings on B's channel find the connection dead (10 s,
        # and 5 s for the answer), B connects again, and the replica's ring of recent changes
        # brings it what it missed. Without the keepalive the connection would stay, dead.
        redis = self.farm.redis()
        replica_a = self.replica(f"redis://127.0.0.1:{redis.port}")
        replica_b = self.replica(f"redis://127.0.0.1:{redis.port}")
        proxy = tlsfarm.TcpProxy(replica_b.port)
        self.addCleanup(proxy.close)
        self.nginx_nodes(replica_a.addr, f"127.0.0.1:{proxy.port}")
        client = self.deletion_inside(ssl.TLSVersion.TLSv1_2, proxy.freeze, "silent path")
        self.RECOVERY = 30.0
        self.assert_dead_everywhere_and_new_sessions_shared(
            ssl.TLSVersion.TLSv1_2, client, "TLSv1.2: node B's path to its replica went silent")

    def test_killed_pubsub_connections(self):
        redis = self.farm.redis()
        replica_a = self.replica(f"redis://127.0.0.1:{redis.port}")
        replica_b = self.replica(f"redis://127.0.0.1:{redis.port}")
        self.nginx_nodes(replica_a.addr, replica_b.addr)
        killing = threading.Event()

        def kill_for_a_while():
            # The replicas subscribe again at once: the connections are killed again and again
            # for half a second, in which the deletion is made.
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                tlsfarm.redis_call(redis.port, b"CLIENT", b"KILL", b"TYPE", b"pubsub")
            killing.clear()

        def kill():
            killing.set()
            threading.Thread(target=kill_for_a_while, daemon=True).start()

        for name, version in VERSIONS.items():
            # Until a deletion fell into a moment B's replica was not subscribed (B's followers
            # were told of a gap), again.
            gaps = self.gaps(replica_b)
            for attempt in range(20):
                client = self.deletion_inside(version, kill, f"pubsub {name}")
                while killing.is_set():
                    time.sleep(0.05)
                self.assert_dead_everywhere_and_new_sessions_shared(
                    version, client, f"{name}: pub/sub connections killed, attempt {attempt + 1}")
                # B's replica subscribes again within moments, and then tells of a gap if
                # the deletion came meanwhile.
                settled = time.monotonic() + 1.0
                while self.gaps(replica_b) <= gaps and time.monotonic() < settled:
                    time.sleep(0.05)
                if self.gaps(replica_b) > gaps:
                    break
            self.assertGreater(self.gaps(replica_b), gaps, "no deletion fell into the window")

    def test_a_sentinel_failover(self):
        master, _, url = self.farm.redis_with_sentinels()
        replica_a = self.replica(url)
        replica_b = self.replica(url)
        self.nginx_nodes(replica_a.addr, replica_b.addr)
        client = self.deletion_inside(ssl.TLSVersion.TLSv1_2, master.kill, "failover")
        self.assert_dead_everywhere_and_new_sessions_shared(
            ssl.TLSVersion.TLSv1_2, client, "TLSv1.2: the Redis master killed (Sentinel failover)")
        client = self.deletion_inside(ssl.TLSVersion.TLSv1_3, lambda: None, "after the failover")
        self.assert_dead_everywhere_and_new_sessions_shared(
            ssl.TLSVersion.TLSv1_3, client, "TLSv1.3: after the failover")

    def test_a_follower_that_stops_reading(self):
        redis = self.farm.redis()
        replica_a = self.replica(f"redis://127.0.0.1:{redis.port}")
        replica_b = self.replica(f"redis://127.0.0.1:{redis.port}")
        node_a, node_b = self.nginx_nodes(replica_a.addr, replica_b.addr, workers=2)
        workers = subprocess.run(["pgrep", "-P", str(node_b.popen.pid)], capture_output=True,
                                 text=True).stdout.split()
        self.assertEqual(len(workers), 2)
        for name, version in VERSIONS.items():
            def stop_b_and_flood():
                for pid in workers:
                    os.kill(int(pid), signal.SIGSTOP)
                # Meanwhile 64 writers store into the namespace through A's replica.
                self.flood = subprocess.Popen(
                    [tlsfarm.built("tlscache-bench"), "stream", f"--addr={replica_a.addr}",
                     "--namespace=default", "--concurrency=64", "--duration=2s",
                     "--value_size=2048", "--json"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            client = self.deletion_inside(version, stop_b_and_flood, f"stopped {name}")
            self.flood.wait(timeout=60)
            for pid in workers:
                os.kill(int(pid), signal.SIGCONT)
            self.assert_dead_everywhere_and_new_sessions_shared(
                version, client, f"{name}: node B's workers stopped for 2 s under a flood")
        log = open(os.path.join(node_b.prefix, "logs", "error.log")).read()
        self.assertNotIn("larger than max", log)

    def test_a_handover_to_a_replica_that_follows_nothing_yet(self):
        redis = self.farm.redis()
        store = f"redis://127.0.0.1:{redis.port}"
        replica_a = self.replica(store)
        for name, version in VERSIONS.items():
            leaving = self.replica(store)
            fresh_port = tlsfarm.free_port()
            # B names two replicas, the second not started yet: it follows the first.
            self.nginx_nodes(replica_a.addr, f"{leaving.addr},127.0.0.1:{fresh_port}")
            self.await_followers(leaving, 1)
            self.farm.cache(store=store, port=fresh_port)
            # The deletion while B's stream moves to the new replica, which subscribes to
            # the namespace only as B's stream comes.
            client = self.deletion_inside(
                version, lambda: leaving.popen.send_signal(signal.SIGTERM), f"handover {name}")
            self.assert_dead_everywhere_and_new_sessions_shared(
                version, client, f"{name}: node B handed over to a replica new to the namespace")


if __name__ == "__main__":
    unittest.main(verbosity=2)
