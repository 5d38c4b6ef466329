"""A 3-node TLS farm behind HAProxy round robin, with and without tlscache.

Real redis-server, tlscache-server, tlscache-tls-server nodes on 127.0.0.11-13 (one port, as a
real farm), HAProxy in TCP mode, and real clients (Python's ssl module, openssl s_client).
"""

import os
import socket
import ssl
import subprocess
import threading
import time
import unittest

import tlsfarm
from tlsfarm.testcase import RECONNECTS, VERSIONS, FarmTestCase


class RoundRobinResumptionTest(FarmTestCase):
    def test_with_tlscache_every_node_resumes_every_session(self):
        _, _, lb = self.cached_farm()
        self.assert_every_reconnect_resumes(lb, "with tlscache")

    def test_curl_resumes_every_reconnect(self):
        _, _, lb = self.cached_farm()
        self.assert_curl_resumes_every_reconnect(lb, "tickets=off")

    def test_a_thousand_immediate_reconnects_resume(self):
        _, _, lb = self.cached_farm()
        self.assert_immediate_reconnects_resume(lb)

    def test_without_tlscache_round_robin_defeats_per_node_caches(self):
        lb = self.farm.haproxy(self.farm.nodes())
        for name, resumed in self.resumption(lb, "per-node caches").items():
            self.assertLessEqual(resumed, RECONNECTS * 0.05, name)

    def test_round_robin_really_spreads_connections(self):
        _, _, lb = self.cached_farm()
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_2)
        served = [client.connect("127.0.0.1", lb)[1].split()[1] for _ in range(6)]
        self.assertEqual(len(set(served)), 3, served)
        self.assertNotEqual(served[0], served[1])

    def test_s_client_session_from_one_node_is_reused_on_another(self):
        cache, port, _ = self.cached_farm()
        for version in ("tls1_2", "tls1_3"):
            session = os.path.join(self.farm.dir, f"{version}.pem")
            self.issue(port, version, session)
            second = tlsfarm.s_client(tlsfarm.NODE_IPS[1], port, version, sess_in=session)
            self.assertIn("Reused,", second, version)
            self.assertIn("node node2", second)


class FarmTicketKeysTest(FarmTestCase):
    """tickets=farm: stateless tickets under the farm's key ring, rotated by the service."""

    def ticket_farm(self, rotation="1h", window="12h"):
        redis = self.farm.redis()
        cache = self.farm.start("cache", [tlsfarm.built("tlscache-server"),
                                          f"--listen=127.0.0.1:{tlsfarm.free_port()}",
                                          f"--store=redis://127.0.0.1:{redis.port}",
                                          f"--ticket_rotation={rotation}",
                                          f"--ticket_decrypt_window={window}"])
        addr = cache.argv[1].split("=", 1)[1]
        tlsfarm.wait_for_port(*addr.split(":")[0:1], int(addr.split(":")[1]),
                              process=cache.popen)
        port = self.farm.nodes(tlscache=f"addr={addr};tickets=farm")
        return cache, port, self.farm.haproxy(port)

    def test_every_node_decrypts_every_nodes_tickets(self):
        _, _, lb = self.ticket_farm()
        self.assert_every_reconnect_resumes(lb, "farm tickets")

    def test_curl_resumes_every_reconnect_with_farm_tickets(self):
        # Each resumption, TLS 1.3 included, brings a fresh ticket: curl uses each once.
        _, _, lb = self.ticket_farm()
        self.assert_curl_resumes_every_reconnect(lb, "tickets=farm")

    def test_rotations_during_a_run_lose_no_resumption(self):
        cache, _, lb = self.ticket_farm(rotation="1s", window="3s")
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_3)
        client.connect("127.0.0.1", lb)
        start = time.monotonic()
        results = [client.connect("127.0.0.1", lb)[0] for _ in range(500)]
        elapsed = time.monotonic() - start
        while time.monotonic() - start < 5.0:  # several rotations inside the run
            results.append(client.connect("127.0.0.1", lb)[0])
        rotations = cache.output().count("rotated to version")
        rate = sum(results) / len(results)
        self.report(f"{len(results)} reconnects over {time.monotonic() - start:.1f} s "
                    f"(500 in {elapsed:.1f} s), {rotations} rotations: {rate:.1%} resumed")
        self.assertGreaterEqual(rotations, 3)
        self.assertGreaterEqual(rate, 0.99)

    def test_three_operator_rotations_a_second_apart_lose_no_resumption(self):
        cache, _, lb = self.ticket_farm()
        addr = cache.argv[1].split("=", 1)[1]
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_3)
        client.connect("127.0.0.1", lb)
        results, stop = [], threading.Event()

        def load():
            while not stop.is_set():
                results.append(client.connect("127.0.0.1", lb)[0])

        worker = threading.Thread(target=load)
        worker.start()
        versions = []
        try:
            for _ in range(3):
                time.sleep(1.0)
                out = subprocess.run([tlsfarm.built("tlscachectl"), f"--addr={addr}",
                                      "--namespace=default", "keys", "rotate"],
                                     capture_output=True, text=True, check=True).stdout
                versions.append(int(out.split("ring version ")[1].split(",")[0]))
            time.sleep(1.0)
        finally:
            stop.set()
            worker.join()
        rate = sum(results) / len(results)
        self.report(f"{len(results)} reconnects across `keys rotate` to versions {versions}: "
                    f"{rate:.1%} resumed")
        self.assertEqual(versions, [versions[0], versions[0] + 1, versions[0] + 2])
        self.assertGreaterEqual(len(results), 500)
        self.assertGreaterEqual(rate, 0.99)

    def test_two_operator_rotations_100ms_apart_lose_no_resumption(self):
        # The second `keys rotate` waits until the PENDING key the first published is
        # --ticket_min_distribution (3 s, the default) old: within tlscachectl's default
        # --timeout of 5 s.
        cache, _, lb = self.ticket_farm()
        addr = cache.argv[1].split("=", 1)[1]
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_3, single_use=True)
        results, failed, stop = [], [], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    results.append(client.connect("127.0.0.1", lb)[0])
                except (OSError, ssl.SSLError) as error:
                    failed.append(repr(error))

        worker = threading.Thread(target=load)
        worker.start()
        rotate = [tlsfarm.built("tlscachectl"), f"--addr={addr}", "--namespace=default",
                  "keys", "rotate"]
        try:
            time.sleep(0.5)
            first = subprocess.Popen(rotate, stdout=subprocess.PIPE, text=True)
            time.sleep(0.1)
            second = subprocess.Popen(rotate, stdout=subprocess.PIPE, text=True)
            outputs = [first.communicate(timeout=30)[0], second.communicate(timeout=30)[0]]
            time.sleep(1.0)  # connections on the last ring
        finally:
            stop.set()
            worker.join()
        self.assertEqual([first.returncode, second.returncode], [0, 0], outputs)
        versions = sorted(int(out.split("ring version ")[1].split(",")[0]) for out in outputs)
        rate = sum(results) / max(1, len(results))
        self.report(f"{len(results)} reconnects across two `keys rotate` 100 ms apart "
                    f"(to versions {versions}): {rate:.2%} resumed, {len(failed)} failed")
        self.assertEqual(failed, [])
        self.assertEqual(versions, [versions[0], versions[0] + 1])
        self.assertGreaterEqual(len(results), 500)
        self.assertGreaterEqual(rate, 0.995)

    def test_a_ticket_older_than_the_decrypt_window_is_refused(self):
        _, _, lb = self.ticket_farm(rotation="1s", window="1s")
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_2)
        client.connect("127.0.0.1", lb)
        self.assertTrue(client.connect("127.0.0.1", lb)[0])  # fresh: resumes
        old = client.session
        # Its key becomes decrypt-only at the next rotation and is dropped a window later.
        time.sleep(3.5)
        client.session = old
        self.assertFalse(client.connect("127.0.0.1", lb)[0])


class FaultTest(FarmTestCase):
    def test_without_a_cache_server_every_handshake_succeeds(self):
        # tlscache configured, but nothing listens at its address.
        port = self.farm.nodes(tlscache=f"addr=127.0.0.1:{tlsfarm.free_port()}")
        lb = self.farm.haproxy(port)
        for name, version in VERSIONS.items():
            client = tlsfarm.Client(version)
            for _ in range(60):
                resumed, body, _ = client.connect("127.0.0.1", lb)
                self.assertIn("node", body)
                self.assertFalse(resumed)

    def test_cache_killed_mid_run_fails_no_handshake_and_recovers_after_restart(self):
        cache, _, lb = self.cached_farm()
        # TLS 1.3 with stateful tickets: every connection brings a new ticket that only the
        # cache can hand to the next node, so resumption shows whether the cache is there.
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_3)
        failures, slowest, handshakes = [], 0.0, 0
        stop = threading.Event()
        resumed_after_restart = threading.Event()
        restarted_at = [None]
        killed = [False]
        full_while_down = [0]

        def load():
            nonlocal slowest, handshakes
            while not stop.is_set():
                try:
                    resumed, _, seconds = client.connect("127.0.0.1", lb)
                    handshakes += 1
                    slowest = max(slowest, seconds)
                    if killed[0] and restarted_at[0] is None and not resumed:
                        full_while_down[0] += 1
                    if resumed and restarted_at[0] is not None:
                        resumed_after_restart.set()
                except Exception as e:  # any failed handshake fails the test
                    failures.append(repr(e))

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(1.0)
            cache.kill()
            killed[0] = True
            time.sleep(2.0)
            self.farm.cache(store=cache.argv[-1].split("=", 1)[1], port=cache.port)
            restarted_at[0] = time.monotonic()
            recovered = resumed_after_restart.wait(15)
            recovery = time.monotonic() - restarted_at[0]
        finally:
            stop.set()
            worker.join()
        self.report(f"{handshakes} handshakes, {len(failures)} failed, slowest "
                    f"{slowest * 1000:.1f} ms, {full_while_down[0]} full while the cache was "
                    f"down; resumed again {recovery:.2f} s after restart")
        self.assertEqual(failures, [])
        self.assertGreater(full_while_down[0], 0)  # the cache really was in the path
        self.assertLess(slowest, 0.050)
        self.assertTrue(recovered, "no resumption within 15 s of the restart")


class AntiReplayTest(FarmTestCase):
    def test_an_early_data_ticket_resumes_once_across_the_farm(self):
        _, port, _ = self.cached_farm(extra=("--max_early_data=16384",))
        ticket = os.path.join(self.farm.dir, "ticket.pem")
        early = os.path.join(self.farm.dir, "early.txt")
        with open(early, "wb") as f:
            f.write(tlsfarm.REQUEST)
        self.issue(port, "tls1_3", ticket)
        first = tlsfarm.s_client(tlsfarm.NODE_IPS[1], port, "tls1_3", sess_in=ticket,
                                 early_data=early)
        self.assertIn("Reused,", first)
        self.assertIn("Early data was accepted", first)
        for ip in (tlsfarm.NODE_IPS[2], tlsfarm.NODE_IPS[0]):
            replay = tlsfarm.s_client(ip, port, "tls1_3", sess_in=ticket, early_data=early)
            self.assertIn("New,", replay, f"replayed ticket resumed on {ip}")
            self.assertNotIn("Early data was accepted", replay)


class NearCacheTest(FarmTestCase):
    """Sessions pushed to every node's near cache (the plugin's default)."""

    def near_farm(self):
        """tlscache-server on the memory store with /metrics, three nodes at the defaults."""
        metrics = tlsfarm.free_port()
        cache = self.farm.cache(extra=[f"--metrics_listen=127.0.0.1:{metrics}"])
        cache.metrics_port = metrics
        port, nodes = self.farm.on_every_node(
            lambda ip, port, name: self.farm.node(ip, port, f"addr={cache.addr}", name=name))
        # Each node follows the namespace from its start; a session made before a node's
        # stream is up reaches that node by a lookup, not a push.
        self.await_metric(cache, "tlscache_feed_followers", 3)
        return cache, port, nodes

    def await_metric(self, cache, name, at_least):
        deadline = time.monotonic() + 15
        while True:
            now = tlsfarm.value(tlsfarm.scrape(cache.metrics_port), name, namespace="default")
            if now >= at_least:
                return
            self.assertLess(time.monotonic(), deadline, f"{name}: {now} of {at_least}")
            time.sleep(0.05)


    def test_resumptions_at_the_defaults_come_from_the_near_cache(self):
        _, _, lb = self.cached_farm()
        self.assert_every_reconnect_resumes(lb, "with the near cache")
        totals = {}
        for process in self.farm.processes:
            if process.name.startswith("node"):
                for key, count in tlsfarm.plugin_stats(process).items():
                    totals[key] = totals.get(key, 0) + count
        near, remote = totals["near_cache.hits"], totals["lookups.hits"]
        self.report(f"{near} resumptions from the near cache, {remote} from the service; "
                    f"push lag p50 {totals['push.lag_p50_us']} us, "
                    f"p99 {totals['push.lag_p99_us']} us (largest of the nodes)")
        # Every TLS 1.3 reconnect offers a ticket another node made (TLS 1.2 ones offer the
        # same session ID again, soon in every node's own cache): the farm resumed them.
        self.assertGreaterEqual(totals["sessions.resumed"], RECONNECTS - 1)
        # A client comes back at once; a push may lose that race now and then, never often.
        self.assertGreaterEqual(near, 0.9 * totals["sessions.resumed"])

    def test_with_the_cache_killed_pushed_copies_answer_nothing_and_no_handshake_fails(self):
        cache, port, _ = self.near_farm()
        clients = []
        for name, version in VERSIONS.items():
            for _ in range(10):
                client = tlsfarm.Client(version)
                resumed, body, _ = client.connect(tlsfarm.NODE_IPS[0], port)
                self.assertFalse(resumed)
                clients.append((name, client, client.session))
        # TLS 1.2: one session each; TLS 1.3: the node's two tickets each. On three nodes:
        # the maker's near cache keeps its own, the two others get them pushed.
        # (The near caches report to /metrics every second.)
        self.await_metric(cache, "tlscache_near_cache_entries", 3 * (10 + 2 * 10))
        cache.kill()
        # A deletion made now could reach no near cache: a second on, none answers.
        time.sleep(1.1)
        for name, client, session in clients:
            for ip in tlsfarm.NODE_IPS[1:]:
                client.session = session
                resumed, body, _ = client.connect(ip, port)
                self.assertFalse(resumed, f"{name}: a pushed copy resumed on {ip}")
                self.assertIn("full", body)  # a full handshake, never a failed one
            # The node that made it still resumes it from OpenSSL's own cache.
            client.session = session
            self.assertTrue(client.connect(tlsfarm.NODE_IPS[0], port)[0],
                            f"{name}: its own node did not resume it")

    def test_past_the_push_budget_sessions_are_answered_by_the_service_and_pushed_again_after(self):
        # 20 pushes a second: three nodes past it with a handful of new TLS 1.3 tickets.
        metrics = tlsfarm.free_port()
        cache = self.farm.cache(extra=[f"--metrics_listen=127.0.0.1:{metrics}",
                                       "--push_budget=20"])
        cache.metrics_port = metrics
        port, nodes = self.farm.on_every_node(
            lambda ip, port, name: self.farm.node(ip, port, f"addr={cache.addr}", name=name))
        self.await_metric(cache, "tlscache_feed_followers", 3)
        lb = self.farm.haproxy(port)
        scrape = lambda name: tlsfarm.value(tlsfarm.scrape(metrics), name, namespace="default")
        # TLS 1.3 stateful tickets, a new one each connection, until the replica stops pushing.
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_3, single_use=True)
        deadline = time.monotonic() + 15
        while scrape("tlscache_feed_push_suspended") != 1:
            self.assertLess(time.monotonic(), deadline, "the budget did not stop the pushes")
            client.connect("127.0.0.1", lb)
        self.assertIn("pass the push budget of 20: its changes are no longer pushed",
                      cache.output())
        time.sleep(1.1)  # the near caches' last report from before
        near_hits = scrape("tlscache_near_cache_hits")
        # Every reconnect still resumes, each from the service: the near caches answer nothing.
        self.assert_every_reconnect_resumes(lb, "past the push budget")
        self.assertEqual(scrape("tlscache_feed_push_suspended"), 1)
        time.sleep(1.1)
        self.assertEqual(scrape("tlscache_near_cache_hits"), near_hits)
        suspended = lambda: scrape("tlscache_feed_push_suspended")
        # Quiet for the calm period: pushed again, the followers checking their copies first.
        deadline = time.monotonic() + 15
        while suspended() != 0:
            self.assertLess(time.monotonic(), deadline, "pushes did not resume")
            time.sleep(0.1)
        self.assertIn("its changes are pushed again", cache.output())
        hits = tlsfarm.value(tlsfarm.scrape(metrics), "tlscache_near_cache_hits",
                             namespace="default")
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_2)
        self.assertFalse(client.connect(tlsfarm.NODE_IPS[0], port)[0])
        time.sleep(0.2)  # the push on its way to node 2
        # Node 2 finds the new session in its near cache (its count reported every second).
        self.assertTrue(client.connect(tlsfarm.NODE_IPS[1], port)[0])
        self.await_metric(cache, "tlscache_near_cache_hits", hits + 1)
        totals = {}
        for node in nodes:
            for key, count in tlsfarm.plugin_stats(node).items():
                totals[key] = totals.get(key, 0) + count
        self.report(f"push budget 20/s: {totals['lookups.hits']} resumptions from the service, "
                    f"{totals['near_cache.hits']} from the near caches")

    def test_a_session_deleted_on_one_node_resumes_nowhere_afterwards(self):
        _, port, _ = self.near_farm()
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_2)
        self.assertFalse(client.connect(tlsfarm.NODE_IPS[0], port)[0])
        session = client.session
        # Node 2 resumes it from its near cache, then receives a record that does not
        # authenticate: it sends a fatal alert (bad_record_mac) and drops the session, as
        # RFC 5246 asks, and tlscache withdraws it from the farm.
        with socket.create_connection((tlsfarm.NODE_IPS[1], port), timeout=5) as raw:
            with client.context.wrap_socket(raw, session=session) as tls:
                self.assertTrue(tls.session_reused)
                os.write(tls.fileno(), b"\x17\x03\x03\x00\x28" + b"\x00" * 40)
                with self.assertRaises((ssl.SSLError, OSError)):
                    tls.recv(100)
        # The withdrawal reaches the other nodes in milliseconds; from then on, nowhere.
        deadline = time.monotonic() + 10
        for ip in tlsfarm.NODE_IPS:
            while True:
                client.session = session
                if not client.connect(ip, port)[0]:
                    break
                self.assertLess(time.monotonic(), deadline, f"still resumed on {ip}")
                time.sleep(0.05)
        for ip in tlsfarm.NODE_IPS:
            client.session = session
            self.assertFalse(client.connect(ip, port)[0], f"resumed again on {ip}")


class PreForkTest(FarmTestCase):
    def test_workers_forked_after_attach_resume_each_others_sessions(self):
        cache = self.farm.cache()
        port = tlsfarm.free_port()
        self.farm.node("127.0.0.1", port, tlscache=f"addr={cache.addr}", name="prefork",
                       extra=("--workers=3", "--threads=1"))
        for name, version in VERSIONS.items():
            client = tlsfarm.Client(version, single_use=True)
            _, body, _ = client.connect("127.0.0.1", port)
            last_pid = body.split()[3]
            moved = resumed = 0
            pids = {last_pid}
            for _ in range(150):
                was_resumed, body, _ = client.connect("127.0.0.1", port)
                pid = body.split()[3]
                pids.add(pid)
                if pid != last_pid:
                    moved += 1
                    resumed += was_resumed
                last_pid = pid
            self.report(f"{name}: {len(pids)} worker processes served; {resumed} of {moved} "
                        "reconnects that changed process resumed")
            self.assertGreaterEqual(len(pids), 2)
            self.assertGreaterEqual(moved, 10)
            # Without tlscache no reconnect that changes process resumes. The client comes
            # back at once, straight to the node: its session is in the farm by then.
            self.assertGreaterEqual(resumed, moved - 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
