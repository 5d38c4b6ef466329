"""Unmodified servers with libtlscache_preload.so: stock nginx and HAProxy from Debian, three of
each on 127.0.0.11-13 behind HAProxy round robin, with real clients.
"""

import base64
import os
import random
import signal
import ssl
import subprocess
import threading
import time
import unittest

import tlsfarm
from tlsfarm.testcase import RECONNECTS, VERSIONS, FarmTestCase


def value(samples, name, **labels):
    """The sum of the samples of `name` that have `labels` (and any others)."""
    return sum(v for (n, sample_labels), v in samples.items()
               if n == name and set(labels.items()) <= sample_labels)


def handshakes(samples):
    return value(samples, "tlscache_plugin_handshakes_total")


def env(cache, **extra):
    """The preload's variables at their defaults (tickets off unless `extra` says)."""
    return {"TLSCACHE_ADDR": cache.addr, "TLSCACHE_TICKETS": "off", **extra}


class NginxPreloadTest(FarmTestCase):
    """Freshly started nginx farms at the preload's defaults: every connection counts, from
    each worker's very first."""

    def nginx_farm(self, variables, shared_cache=False, tickets=False, blocks=None):
        port, nodes = self.farm.on_every_node(
            lambda ip, port, name: self.farm.nginx(ip, port, name, env=variables,
                                                   shared_cache=shared_cache, tickets=tickets,
                                                   blocks=blocks))
        return nodes, port, self.farm.haproxy(port)

    def test_every_nginx_resumes_every_session_with_tickets_off(self):
        cache = self.farm.cache()
        nodes, port, lb = self.nginx_farm(env(cache))
        self.assert_every_reconnect_resumes(lb, "nginx + preload")
        session = os.path.join(self.farm.dir, "session.pem")
        self.assertIn("New,", tlsfarm.s_client(tlsfarm.NODE_IPS[0], port, "tls1_2",
                                               sess_out=session))
        reused = tlsfarm.s_client(tlsfarm.NODE_IPS[2], port, "tls1_2", sess_in=session)
        self.assertIn("Reused,", reused)
        self.assertIn("node node3", reused)
        # Nothing of gRPC in the masters: only the workers connect to the cache.
        for node in nodes:
            with open(f"/proc/{node.popen.pid}/status") as status:
                threads = [line for line in status if line.startswith("Threads:")][0]
            self.assertEqual(threads.split()[1], "1", f"{node.name} master: {threads}")
        log = open(os.path.join(nodes[0].prefix, "logs", "error.log")).read()
        shared = ("tlscache preload: TLS 1.2 session IDs and TLS 1.3 stateful tickets are "
                  "shared through")
        self.assertEqual(log.count(shared), 2, log)  # once per worker

    def test_stats_interval_prints_each_workers_counters(self):
        cache = self.farm.cache()
        nodes, _, lb = self.nginx_farm(env(cache, TLSCACHE_STATS_INTERVAL="1"))
        self.resumption(lb, "nginx + preload with stats")
        log_path = os.path.join(nodes[0].prefix, "logs", "error.log")
        deadline = time.monotonic() + 10
        while True:
            pids = tlsfarm.preload_stats(open(log_path).read())
            if len(pids) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(len(pids), 2, open(log_path).read())  # one reporter per worker
        for stats in pids.values():
            self.assertEqual((stats["contexts"], stats["rejected"]), (1, 0), pids)
        self.assertTrue(any(stats["resumed"] > 0 for stats in pids.values()), pids)

    def test_each_worker_keeps_a_textfile_for_node_exporter(self):
        cache = self.farm.cache()
        directory = os.path.join(self.farm.dir, "textfiles")
        os.makedirs(directory)
        nodes, _, lb = self.nginx_farm(env(
            cache, TLSCACHE_METRICS_FILE=os.path.join(directory, "tlscache.prom")))
        resumed = self.resumption(lb, "nginx + preload with a metrics file")
        def textfiles():
            """{pid: text} of the *.prom files, as node_exporter reads them (a file being
            replaced is written under another name first)."""
            texts = {}
            for name in os.listdir(directory):
                if not name.endswith(".prom"):
                    continue
                self.assertRegex(name, r"^tlscache\.\d+\.prom$")
                with open(os.path.join(directory, name)) as f:
                    texts[name.split(".")[1]] = f.read()
            return texts

        workers = {}  # pid: samples, the file of each worker that served
        deadline = time.monotonic() + 15
        while sum(handshakes(w) for w in workers.values()) < 2 * RECONNECTS:
            self.assertLess(time.monotonic(), deadline, os.listdir(directory))
            time.sleep(0.5)
            workers = {pid: tlsfarm.parse_metrics(text) for pid, text in textfiles().items()}
        total = sum(handshakes(w) for w in workers.values())
        total_resumed = sum(value(w, "tlscache_plugin_handshakes_resumed_total")
                            for w in workers.values())
        self.report(f"{len(workers)} workers' textfiles: {total:.0f} handshakes, {total_resumed:.0f} resumed "
                    f"(the clients counted {sum(resumed.values())} resumed)")
        self.assertEqual(total, 2 * RECONNECTS)
        self.assertEqual(total_resumed, sum(resumed.values()))
        for pid, samples in workers.items():
            self.assertEqual(value(samples, "tlscache_plugin_contexts", pid=pid, program="nginx"),
                             1)
            self.assertGreater(value(samples, "tlscache_textfile_updated_seconds", pid=pid,
                                     program="nginx"), time.time() - 30)
        # A killed worker's file stays, and shows its age; a clean exit removes the files.
        killed = next(iter(workers))
        os.kill(int(killed), signal.SIGKILL)
        killed_at = time.time()

        def updated():
            return {pid: value(tlsfarm.parse_metrics(text), "tlscache_textfile_updated_seconds")
                    for pid, text in textfiles().items()}

        deadline = time.monotonic() + 15
        while not all(t > killed_at for pid, t in updated().items() if pid != killed):
            self.assertLess(time.monotonic(), deadline, updated())
            time.sleep(0.5)
        self.assertLess(updated()[killed], killed_at, "a dead worker's file kept changing")
        for node in nodes:
            node.stop()
        self.assertEqual(list(textfiles()), [killed])

    def test_curl_resumes_every_reconnect(self):
        cache = self.farm.cache()
        _, _, lb = self.nginx_farm(env(cache))
        self.assert_curl_resumes_every_reconnect(lb, "nginx, TLSCACHE_TICKETS=off")

    def test_curl_resumes_every_reconnect_with_nginx_tickets_on_the_farm_key_ring(self):
        cache = self.farm.cache()
        _, _, lb = self.nginx_farm(env(cache, TLSCACHE_TICKETS="farm"), tickets=True)
        self.assert_curl_resumes_every_reconnect(lb, "nginx, TLSCACHE_TICKETS=farm")

    def test_nginx_shared_cache_stays_the_first_tier(self):
        cache = self.farm.cache()
        nodes, port, lb = self.nginx_farm(env(cache), shared_cache=True)
        self.assert_every_reconnect_resumes(lb, "nginx shared cache + preload")
        log = open(os.path.join(nodes[0].prefix, "logs", "error.log")).read()
        self.assertIn("behind the application's own session cache", log)
        # With the cache service gone, a node still resumes what its own cache holds.
        cache.kill()
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_2)
        client.connect(tlsfarm.NODE_IPS[0], port)
        resumed = [client.connect(tlsfarm.NODE_IPS[0], port)[0] for _ in range(10)]
        self.assertEqual(resumed, [True] * 10)

    def test_nginx_with_its_default_tickets_on_uses_the_farm_key_ring(self):
        cache = self.farm.cache()
        nodes, _, lb = self.nginx_farm(env(cache, TLSCACHE_TICKETS="farm"), tickets=True)
        self.assert_every_reconnect_resumes(lb, "nginx tickets on + farm key ring")
        log = open(os.path.join(nodes[0].prefix, "logs", "error.log")).read()
        self.assertIn("session tickets are encrypted under the farm's key ring", log)
        self.assertIn("in place of keys OpenSSL drew for this node alone", log)

    def assert_stock_nginx_farm_does_not_share(self, label, **nginx_options):
        """Three stock nginx without the preload, round robin: (almost) nothing resumes."""
        port, _ = self.farm.on_every_node(
            lambda ip, port, name: self.farm.nginx(ip, port, name, **nginx_options))
        lb = self.farm.haproxy(port)
        for name, resumed in self.resumption(lb, label).items():
            self.assertLessEqual(resumed, RECONNECTS * 0.05, name)

    def test_nginx_tickets_on_without_the_preload_do_not_travel(self):
        self.assert_stock_nginx_farm_does_not_share("stock nginx, own ticket keys", tickets=True)

    def test_without_the_preload_round_robin_defeats_nginx_caches(self):
        self.assert_stock_nginx_farm_does_not_share("stock nginx shared cache", shared_cache=True)

    def test_reloads_and_worker_restarts_fail_no_connection(self):
        cache = self.farm.cache()
        nodes, _, lb = self.nginx_farm(env(cache))
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_3, single_use=True)
        failures, results = [], []
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    results.append(client.connect("127.0.0.1", lb)[0])
                except Exception as e:
                    failures.append(repr(e))

        worker = threading.Thread(target=load)
        worker.start()
        try:
            for node in nodes:
                time.sleep(0.5)
                subprocess.run([tlsfarm.require("nginx"), "-p", node.prefix, "-c", node.config,
                                "-s", "reload"], check=True, capture_output=True)
            time.sleep(1.0)
        finally:
            stop.set()
            worker.join()
        # The client's first connection has no session to offer: the reconnects are counted.
        reconnects = results[1:]
        resumed = sum(reconnects) / len(reconnects)
        self.report(f"{len(results)} connections across 3 reloads, {len(failures)} failed, "
                    f"{resumed:.1%} of the reconnects resumed")
        self.assertEqual(failures, [])
        # Each reload starts new workers, whose first connections resume like any other.
        self.assertGreaterEqual(resumed, 0.99)

        # A worker that dies is replaced by the master; the new one joins the farm too.
        master = nodes[0].popen.pid
        workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                 text=True).stdout.split()
        os.kill(int(workers[0]), 9)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                 text=True).stdout.split()
            if len(now) == len(workers) and workers[0] not in now:
                break
            time.sleep(0.05)
        self.assertNotIn(workers[0], now)
        after = [client.connect("127.0.0.1", lb)[0] for _ in range(60)]
        self.report(f"after a worker restart: {sum(after)} of {len(after)} resumed")
        self.assertGreaterEqual(sum(after), len(after) - 1)

    def test_a_session_never_crosses_to_a_block_with_other_client_cas(self):
        cache = self.farm.cache()
        cert, key, ca_a = self.farm.issue("client-a", ca_name="ca-a")
        _, _, ca_b = self.farm.issue("client-b", ca_name="ca-b")
        block_a = f"ssl_verify_client optional; ssl_client_certificate {ca_a};"
        block_b = f"ssl_verify_client on; ssl_client_certificate {ca_b};"
        for variables in ({}, {"TLSCACHE_SID_CTX": "farm"}):
            for tickets in ("off", "farm"):
                label = f"tickets={tickets}{' with TLSCACHE_SID_CTX' if variables else ''}"
                port, port_a, port_b = (tlsfarm.free_port(tlsfarm.NODE_IPS) for _ in range(3))
                for i, ip in enumerate(tlsfarm.NODE_IPS[:2]):
                    self.farm.nginx(ip, port, f"node{i + 1}-{tickets}-{len(variables)}",
                                    env=env(cache, TLSCACHE_TICKETS=tickets, **variables),
                                    tickets=True, blocks={port_a: block_a, port_b: block_b})
                for name, version in VERSIONS.items():
                    with self.subTest(label, version=name):
                        self.assert_blocks_keep_apart(port_a, port_b, version, cert, key, label)

    def assert_blocks_keep_apart(self, port_a, port_b, version, cert, key, label):
        """A session made on block A (client certificate from CA A) resumes on block A of the
        other node, and on block B (CA B required) of neither."""
        client = tlsfarm.Client(version, single_use=True)
        client.context.load_cert_chain(cert, key)
        resumed, body, _ = client.connect(tlsfarm.NODE_IPS[0], port_a)
        self.assertFalse(resumed)
        self.assertIn("SUCCESS", body)
        resumed, body, _ = client.connect(tlsfarm.NODE_IPS[1], port_a)
        self.assertTrue(resumed, f"identical block A did not share: {body}")
        session = client.session
        self.assertIsNotNone(session, "block A gave no session to offer")
        # Block B in its steady state too, not only at its workers' first connections: each
        # of them has served a connection (no session, no certificate) before the session
        # from block A is offered to it.
        stranger = tlsfarm.Client(version)
        for ip in tlsfarm.NODE_IPS[:2]:
            for _ in range(4):
                stranger.session = None
                stranger.connect(ip, port_b)
        crossed = []
        for ip in tlsfarm.NODE_IPS[:2]:
            client.session = session
            resumed, body, _ = client.connect(ip, port_b)
            if resumed:
                crossed.append(f"{ip}: {body}")
        self.report(f"{label} {version.name}: shared on block A, {len(crossed)} of 2 "
                    "resumed on block B")
        self.assertEqual(crossed, [])

    def test_a_block_with_ssl_session_cache_off_never_resumes(self):
        cache = self.farm.cache()
        for tickets in ("off", "farm"):
            port, nodes = self.farm.on_every_node(
                lambda ip, port, name: self.farm.nginx(
                    ip, port, f"{name}-{tickets}", env=env(cache, TLSCACHE_TICKETS=tickets),
                    directives="ssl_session_cache off;"))
            lb = self.farm.haproxy(port)
            for name, resumed in self.resumption(lb, f"ssl_session_cache off, tickets={tickets}",
                                                 connections=20).items():
                self.assertEqual(resumed, 0, name)
            for name, resumed in self.resumption(port, "the same node", connections=20,
                                                 ip=tlsfarm.NODE_IPS[0]).items():
                self.assertEqual(resumed, 0, name)
            log = open(os.path.join(nodes[0].prefix, "logs", "error.log")).read()
            self.assertIn("SSL_SESS_CACHE_OFF", log)
            self.assertEqual(log.count("SSL_SESS_CACHE_OFF"), 2, log)  # once per worker

    def test_a_bad_variable_is_one_line_and_nginx_serves_without_tlscache(self):
        cache = self.farm.cache()
        port = tlsfarm.free_port()
        node = self.farm.nginx("127.0.0.1", port, "solo",
                               env=env(cache, TLSCACHE_TIMEOUT_MS="fast"))
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_2)
        self.assertIn("node solo", client.connect("127.0.0.1", port)[1])
        lines = [line for line in node.output().splitlines() if "tlscache" in line]
        self.assertEqual(lines, ["tlscache preload: TLSCACHE_TIMEOUT_MS: 'fast' is not a number "
                                 "of milliseconds in 1..1000: this process runs without "
                                 "tlscache"])

    def test_without_tlscache_addr_nothing_changes_and_it_says_so(self):
        port = tlsfarm.free_port()
        node = self.farm.nginx("127.0.0.1", port, "solo", env={})
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_2)
        self.assertIn("node solo", client.connect("127.0.0.1", port)[1])
        self.assertIn("tlscache preload: TLSCACHE_ADDR is not set", node.output())


class SmallestDropInTest(FarmTestCase):
    """Stock servers at their defaults with TLSCACHE_ADDR alone: whatever the server chose for
    its tickets, sessions travel across the farm, and the preload says exactly how."""

    def resumptions(self, lb, label):
        for name, resumed in self.resumption(lb, label, connections=60).items():
            self.assertGreaterEqual(resumed, 59, name)

    def nginx_farm(self, cache, **options):
        port, nodes = self.farm.on_every_node(
            lambda ip, port, name: self.farm.nginx(ip, port, name,
                                                   env={"TLSCACHE_ADDR": cache.addr}, **options))
        return nodes, self.farm.haproxy(port)

    @staticmethod
    def preload_lines(nodes):
        log = open(os.path.join(nodes[0].prefix, "logs", "error.log")).read()
        return [line.split("tlscache preload: ", 1)[1] for line in log.splitlines()
                if "tlscache preload: " in line]

    def test_nginx_at_its_defaults_shares_its_tickets_through_the_farm_key_ring(self):
        # nginx's defaults: tickets on, under keys OpenSSL draws for each node; no cache.
        nodes, lb = self.nginx_farm(self.farm.cache(), ticket_settings="")
        self.resumptions(lb, "stock nginx defaults + TLSCACHE_ADDR")
        lines = self.preload_lines(nodes)
        self.assertTrue(any("encrypted under the farm's key ring" in line and
                            "in place of keys OpenSSL drew for this node alone" in line
                            for line in lines), lines)
        self.assertFalse(any("TLS 1.3 stateful tickets are shared" in line for line in lines),
                         lines)

    def test_nginx_with_tickets_off_shares_through_the_cache(self):
        nodes, lb = self.nginx_farm(self.farm.cache())  # ssl_session_tickets off
        self.resumptions(lb, "nginx, tickets off, + TLSCACHE_ADDR")
        lines = self.preload_lines(nodes)
        self.assertTrue(any(line.startswith("TLS 1.2 session IDs and TLS 1.3 stateful tickets "
                                            "are shared through") for line in lines), lines)

    def test_nginx_keeps_ticket_keys_its_operator_configured(self):
        cache = self.farm.cache()
        # A key of its own for each node: nothing the farm should quietly replace.
        keys = []
        for i in range(3):
            keys.append(os.path.join(self.farm.dir, f"ticket-{i}.key"))
            with open(keys[-1], "wb") as f:
                f.write(os.urandom(80))
        port = tlsfarm.free_port(tlsfarm.NODE_IPS)
        nodes = [self.farm.nginx(ip, port, f"node{i + 1}", env={"TLSCACHE_ADDR": cache.addr},
                                 ticket_settings=f"ssl_session_ticket_key {keys[i]};")
                 for i, ip in enumerate(tlsfarm.NODE_IPS)]
        lb = self.farm.haproxy(port)
        # The keys stay: a ticket made on one node does not decrypt on the others.
        for name, resumed in self.resumption(lb, "nginx, own ticket keys", connections=30).items():
            self.assertLessEqual(resumed, 2, name)
        lines = self.preload_lines(nodes)
        own = [line for line in lines if "keys of its own configuration" in line]
        self.assertEqual(len(own), 2, lines)  # one line, once per worker
        self.assertIn("which other nodes decrypt only if they hold the same keys", own[0])
        self.assertFalse(any("key ring" in line and "in place of" in line for line in lines),
                         lines)
        # The same key file on every node (what an operator who shares keys does): they
        # still decrypt each other's tickets, so the keys really were kept.
        shared_port = tlsfarm.free_port(tlsfarm.NODE_IPS)
        for i, ip in enumerate(tlsfarm.NODE_IPS):
            self.farm.nginx(ip, shared_port, f"shared{i + 1}", env={"TLSCACHE_ADDR": cache.addr},
                            ticket_settings=f"ssl_session_ticket_key {keys[0]};")
        self.resumptions(self.farm.haproxy(shared_port), "nginx, one ticket key file")

    def test_haproxy_at_its_defaults_shares_its_tickets_through_the_farm_key_ring(self):
        cache = self.farm.cache()
        port, nodes = self.farm.on_every_node(
            lambda ip, port, name: self.farm.haproxy_tls(ip, port, name,
                                                         env={"TLSCACHE_ADDR": cache.addr}))
        self.resumptions(self.farm.haproxy(port), "stock HAProxy defaults + TLSCACHE_ADDR")
        self.assertIn("encrypted under the farm's key ring", nodes[0].output())

    def test_haproxy_keeps_ticket_keys_its_operator_configured(self):
        cache = self.farm.cache()
        port = tlsfarm.free_port(tlsfarm.NODE_IPS)
        nodes = []
        for i, ip in enumerate(tlsfarm.NODE_IPS):
            keys = os.path.join(self.farm.dir, f"haproxy-{i}.keys")
            with open(keys, "w") as f:
                for _ in range(3):
                    f.write(base64.b64encode(os.urandom(80)).decode() + "\n")
            nodes.append(self.farm.haproxy_tls(ip, port, f"node{i + 1}",
                                               env={"TLSCACHE_ADDR": cache.addr},
                                               bind_options=f"tls-ticket-keys {keys}"))
        lb = self.farm.haproxy(port)
        for name, resumed in self.resumption(lb, "HAProxy, own ticket keys",
                                             connections=30).items():
            self.assertLessEqual(resumed, 2, name)
        self.assertIn("keys of its own configuration", nodes[0].output())


class SniBlocksTest(FarmTestCase):
    """An nginx port with a default server block and one that SNI selects, each with its own
    session settings: with the preload every block resumes as it does in stock nginx (the
    session callbacks come from the default block's context, the settings from the selected
    one's: nginx ticket #235)."""

    CASES = {
        # Both without tickets, each with a shared cache of its own.
        "tickets off, own caches": ("ssl_session_tickets off; ssl_session_cache shared:A:1m;",
                                    "ssl_session_tickets off; ssl_session_cache shared:B:1m;",
                                    "farm"),
        # Both with tickets under key files of their own, no session cache.
        "own ticket keys": ("ssl_session_ticket_key {key_a};", "ssl_session_ticket_key {key_b};",
                            "off"),
    }

    def resumption_pattern(self, port):
        """Per server name and TLS version, which of 4 connections resumed ("r") or not."""
        pattern = {}
        for server_name in ("default.farm.test", "sni.farm.test"):
            for name, version in VERSIONS.items():
                client = tlsfarm.Client(version, single_use=True, server_name=server_name)
                marks = ""
                for _ in range(4):
                    resumed, body, _ = client.connect("127.0.0.1", port)
                    marks += "r" if resumed else "."
                    if server_name == "sni.farm.test":
                        self.assertIn("sni sni.farm.test", body)
                pattern[(server_name, name)] = marks
        return pattern

    def test_each_block_resumes_as_in_stock_nginx(self):
        cache = self.farm.cache()
        key_a, key_b = (os.path.join(self.farm.dir, f"{n}.key") for n in "ab")
        for path in (key_a, key_b):
            with open(path, "wb") as f:
                f.write(os.urandom(80))
        for index, (case, (default, sni, tickets)) in enumerate(self.CASES.items()):
            default = default.format(key_a=key_a, key_b=key_b)
            sni = sni.format(key_a=key_a, key_b=key_b)
            patterns = {}
            for label, variables in (("stock", None),
                                     ("preload", {"TLSCACHE_ADDR": cache.addr,
                                                  "TLSCACHE_TICKETS": tickets})):
                port = tlsfarm.free_port()
                self.farm.nginx("127.0.0.1", port, f"{label}-{index}",
                                env=variables, workers=1, ticket_settings=default,
                                sni_blocks={"sni.farm.test": sni})
                patterns[label] = self.resumption_pattern(port)
            self.report(f"{case}, TLSCACHE_TICKETS={tickets}: stock {patterns['stock']}, "
                        f"preload {patterns['preload']}")
            for key, marks in patterns["stock"].items():
                self.assertEqual(marks, ".rrr", f"{case}: stock nginx {key}")
            self.assertEqual(patterns["preload"], patterns["stock"], case)


class HaproxyPreloadTest(FarmTestCase):
    def haproxy_farm(self, **variables):
        cache = self.farm.cache()
        port, _ = self.farm.on_every_node(
            lambda ip, port, name: self.farm.haproxy_tls(ip, port, name,
                                                         env=env(cache, **variables)))
        return self.farm.haproxy(port)

    def test_haproxy_terminators_resume_every_session(self):
        self.assert_every_reconnect_resumes(self.haproxy_farm(), "HAProxy + preload")

    def test_curl_resumes_every_reconnect_on_haproxy_terminators(self):
        self.assert_curl_resumes_every_reconnect(self.haproxy_farm(), "HAProxy, tickets=off")

    def test_curl_resumes_every_reconnect_on_haproxy_terminators_with_farm_tickets(self):
        self.assert_curl_resumes_every_reconnect(self.haproxy_farm(TLSCACHE_TICKETS="farm"),
                                                 "HAProxy, tickets=farm")

    def test_simultaneous_first_connections_on_a_threaded_haproxy_all_succeed(self):
        # HAProxy runs a thread per core: its first connections race to the one attach of
        # each context; each waits for it rather than meet a context half changed.
        lb = self.haproxy_farm()
        clients = [tlsfarm.Client(ssl.TLSVersion.TLSv1_3, single_use=True) for _ in range(24)]
        start = threading.Barrier(len(clients))
        failed, resumed = [], []

        def run(client):
            start.wait()
            try:
                client.connect("127.0.0.1", lb)
                resumed.append(client.connect("127.0.0.1", lb)[0])
            except (OSError, ssl.SSLError) as error:
                failed.append(repr(error))

        threads = [threading.Thread(target=run, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.report(f"{len(clients)} clients at once on fresh HAProxy + preload: "
                    f"{len(failed)} failed, {sum(resumed)} of {len(resumed)} reconnects resumed")
        self.assertEqual(failed, [])

    def test_without_the_preload_haproxy_terminators_do_not_share(self):
        port, _ = self.farm.on_every_node(self.farm.haproxy_tls)
        lb = self.farm.haproxy(port)
        rate = tlsfarm.resumption_rate(tlsfarm.Client(ssl.TLSVersion.TLSv1_2), "127.0.0.1", lb,
                                       RECONNECTS)
        self.report(f"TLSv1.2 stock HAProxy terminators: {rate:.1%} resumed")
        self.assertLessEqual(rate, 0.05)


if __name__ == "__main__":
    unittest.main(verbosity=2)


class NodeSharingTest(FarmTestCase):
    """nginx with 8 workers a node, as `worker_processes auto` runs on an 8-core node: one near
    cache per node in memory its workers share, one of them following the farm for all."""

    WORKERS = 8

    def sharing_farm(self, **variables):
        metrics = tlsfarm.free_port()
        cache = self.farm.cache(extra=[f"--metrics_listen=127.0.0.1:{metrics}"])
        cache.metrics_port = metrics
        port, nodes = self.farm.on_every_node(
            lambda ip, port, name: self.farm.nginx(ip, port, name, env=env(cache, **variables),
                                                   workers=self.WORKERS))
        return cache, nodes, self.farm.haproxy(port)

    def metric(self, cache, name, **labels):
        return tlsfarm.value(tlsfarm.scrape(cache.metrics_port), name, **labels)

    def await_followers(self, cache, count, timeout=15):
        deadline = time.monotonic() + timeout
        while self.metric(cache, "tlscache_feed_followers", namespace="default") != count:
            self.assertLess(time.monotonic(), deadline, "followers")
            time.sleep(0.02)

    @staticmethod
    def workers(node):
        return [int(pid) for pid in subprocess.run(
            ["pgrep", "-P", str(node.popen.pid)], capture_output=True, text=True).stdout.split()]

    @staticmethod
    def threads(pid):
        names = []
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/comm") as comm:
                    names.append(comm.read().strip())
        except OSError:
            pass
        return names

    def follower(self, node):
        """The worker of `node` that follows the farm for it (its reader thread says so)."""
        found = [pid for pid in self.workers(node) if "tlscache-follow" in self.threads(pid)]
        self.assertLessEqual(len(found), 1, f"{node.name}: more than one follower: {found}")
        return found[0] if found else None

    def load(self, lb, hold=None, idle=None):
        """Two clients (TLS 1.2, and TLS 1.3 using each ticket once) connecting through `lb`, one
        connection after another, until the returned stop() is called. While `hold` is set they
        wait between two connections (and set `idle`). Returns (results, failures, stop)."""
        results, failures, stopping = [], [], threading.Event()

        def run(version):
            client = tlsfarm.Client(version, single_use=True)
            while not stopping.is_set():
                if hold is not None and hold.is_set():
                    idle.set()
                    time.sleep(0.005)
                    continue
                try:
                    results.append(client.connect("127.0.0.1", lb)[0])
                except Exception as e:
                    failures.append(repr(e))

        threads = [threading.Thread(target=run, args=(v,)) for v in VERSIONS.values()]
        for thread in threads:
            thread.start()

        def stop():
            stopping.set()
            for thread in threads:
                thread.join()

        return results, failures, stop

    def test_every_session_resumes_everywhere_and_is_pushed_once_per_node(self):
        cache, nodes, lb = self.sharing_farm()
        self.assert_every_reconnect_resumes(lb, f"nginx x3, {self.WORKERS} workers a node")
        self.assert_curl_resumes_every_reconnect(lb, f"nginx x3, {self.WORKERS} workers a node")
        # One follower a node: three streams receive the log, whatever the workers.
        self.await_followers(cache, 3)
        for node in nodes:
            self.assertIsNotNone(self.follower(node), node.name)
        # From here, each change of the log is written to three streams: once per node.
        changes = self.metric(cache, "tlscache_feed_changes_total", source="log")
        pushed = self.metric(cache, "tlscache_feed_pushed_total")
        more = self.resumption(lb, "with the followers up")
        changes = self.metric(cache, "tlscache_feed_changes_total", source="log") - changes
        pushed = self.metric(cache, "tlscache_feed_pushed_total") - pushed
        self.report(f"{changes:.0f} changes of the log, {pushed:.0f} pushes: "
                    f"{pushed / changes:.2f} a change, 3 nodes of {self.WORKERS} workers")
        self.assertGreaterEqual(changes, RECONNECTS)  # a TLS 1.3 ticket each connection
        self.assertEqual(pushed, 3 * changes)
        for name, resumed in more.items():
            self.assertGreaterEqual(resumed, RECONNECTS - 1, name)

    def test_the_follower_killed_mid_run_fails_nothing_and_another_takes_over(self):
        cache, nodes, lb = self.sharing_farm()
        self.await_followers(cache, 0)  # nothing connected yet: each node's first connection
        hold, idle = threading.Event(), threading.Event()
        results, failures, stop = self.load(lb, hold, idle)
        try:
            time.sleep(2)
            self.await_followers(cache, 3)
            victim = self.follower(nodes[0])
            self.assertIsNotNone(victim)
            hold.set()
            idle.wait(5)
            time.sleep(0.05)  # both loaders between connections
            os.kill(victim, 9)
            killed = time.monotonic()
            hold.clear()
            idle.clear()
            # Another worker of the node takes the lease and follows: three followers again.
            self.await_followers(cache, 2, timeout=5)
            self.await_followers(cache, 3, timeout=5)
            back = time.monotonic() - killed
            successor = self.follower(nodes[0])
            time.sleep(2)
        finally:
            stop()
        reconnects = len(results) - 2  # each client's first connection has nothing to offer
        resumed = sum(results)
        self.report(f"follower killed: another worker followed for the node {back * 1000:.0f} ms "
                    f"later; {len(results)} connections, {len(failures)} failed, "
                    f"{resumed} of {reconnects} reconnects resumed")
        self.assertEqual(failures, [])
        self.assertNotIn(successor, (None, victim))
        self.assertLess(back, 1.0)
        self.assertGreaterEqual(resumed, 0.995 * reconnects)

    def test_workers_killed_at_random_under_load_wedge_no_other(self):
        cache, nodes, lb = self.sharing_farm()
        results, failures, stop = self.load(lb)
        kills = 0
        rng = random.Random(26)
        try:
            time.sleep(1)
            for _ in range(12):  # any worker, the followers included, at any moment
                workers = self.workers(rng.choice(nodes))
                os.kill(rng.choice(workers), 9)
                kills += 1
                time.sleep(rng.uniform(0.05, 0.4))
        finally:
            stop()
        # A killed worker takes its connections in flight with it (two clients: at most two
        # each time); no other connection fails, and nothing is left wedged.
        self.assertLessEqual(len(failures), 2 * kills, failures)
        for node in nodes:
            deadline = time.monotonic() + 10
            while len(self.workers(node)) != self.WORKERS:
                self.assertLess(time.monotonic(), deadline, f"{node.name}: workers")
                time.sleep(0.05)
        self.await_followers(cache, 3, timeout=5)
        after = self.resumption(lb, f"after {kills} workers were killed")
        self.report(f"{kills} workers killed under load: {len(failures)} of "
                    f"{len(results) + len(failures)} connections failed (those in flight on "
                    f"them)")
        for name, resumed in after.items():
            self.assertGreaterEqual(resumed, RECONNECTS - 1, name)

    def test_reloads_under_load_fail_no_connection(self):
        cache, nodes, lb = self.sharing_farm()
        results, failures, stop = self.load(lb)
        try:
            for node in nodes:
                time.sleep(0.7)
                subprocess.run([tlsfarm.require("nginx"), "-p", node.prefix, "-c", node.config,
                                "-s", "reload"], check=True, capture_output=True)
            time.sleep(1.5)
        finally:
            stop()
        reconnects = len(results) - 2
        resumed = sum(results)
        self.report(f"{len(results)} connections across 3 reloads of {self.WORKERS} workers, "
                    f"{len(failures)} failed, {resumed} of {reconnects} reconnects resumed")
        self.assertEqual(failures, [])
        self.assertGreaterEqual(resumed, 0.99 * reconnects)
        self.await_followers(cache, 3, timeout=5)
