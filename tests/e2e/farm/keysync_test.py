"""tlscache-keysync: the farm's ticket keys in stock servers that load no tlscache library,
each node with its keysync behind HAProxy round robin, driven by real clients at the defaults.

  nginx    80-byte key files and the directives a server block includes, reload on change
  HAProxy  its tls-ticket-keys file and `set ssl tls-key` on its runtime API: no reload
  Apache   its one 48-byte key, graceful restart on change: what a rotation costs
  barrier  a rotation waits for every live follower to hold its PENDING key, and for a stopped
           one only until its lease ends

Rotations are forced with `tlscachectl keys rotate`, one after another, as fast as the service
allows (each waits until its PENDING key is --ticket_min_distribution old, 3 s, and held by
every live follower)."""

import base64
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time

import tlsfarm
from tlsfarm.testcase import RECONNECTS, VERSIONS, FarmTestCase


def rotate(addr, timeout="60s"):
    """`tlscachectl keys rotate`: (the new ring's version, its ACTIVE key's name)."""
    out = subprocess.run([tlsfarm.built("tlscachectl"), f"--addr={addr}", "--namespace=default",
                          f"--timeout={timeout}", "keys", "rotate"],
                         capture_output=True, text=True, check=True).stdout
    version = int(out.split("ring version ")[1].split(",")[0])
    active = re.search(r"^([0-9a-f]{32}) +ACTIVE", out, re.M).group(1)
    return version, active


def keys_show(addr):
    return subprocess.run([tlsfarm.built("tlscachectl"), f"--addr={addr}", "--namespace=default",
                           "keys", "show"], capture_output=True, text=True, check=True).stdout


def textfile(path):
    with open(path) as f:
        return tlsfarm.parse_metrics(f.read())


class Load:
    """Clients reconnecting through the balancer until stopped, one thread per TLS version,
    each using every TLS 1.3 ticket once. Counts, per version, connections that offered a
    session and those of them that resumed, and connections that failed."""

    def __init__(self, lb):
        self.lb, self.stop, self.failed = lb, threading.Event(), []
        self.offered = {name: 0 for name in VERSIONS}
        self.resumed = {name: 0 for name in VERSIONS}
        self.threads = [threading.Thread(target=self.run, args=(name, version))
                        for name, version in VERSIONS.items()]

    def run(self, name, version):
        client = tlsfarm.Client(version, single_use=True)
        while not self.stop.is_set():
            had = client.session is not None
            try:
                resumed = client.connect("127.0.0.1", self.lb)[0]
            except (OSError, ssl.SSLError) as error:
                self.failed.append(f"{name}: {error!r}")
                client.session = None
                continue
            self.offered[name] += had
            self.resumed[name] += had and resumed

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


class KeysyncTestCase(FarmTestCase):
    def rotations_under_load(self, cache, lb, rotations=3, settle=1.0):
        """`rotations` forced rotations one after another under Load; asserts that none
        failed and that every connection that offered a session resumed (99%), per
        version. Returns the rotations' durations."""
        with Load(lb) as load:
            time.sleep(settle)
            durations, versions = [], []
            for _ in range(rotations):
                start = time.monotonic()
                versions.append(rotate(cache.addr)[0])
                durations.append(time.monotonic() - start)
            time.sleep(settle)
        for name in VERSIONS:
            rate = load.resumed[name] / max(1, load.offered[name])
            self.report(f"{name}: {load.resumed[name]} of {load.offered[name]} connections that "
                        f"offered a session resumed ({rate:.2%}) across {rotations} rotations "
                        f"to versions {versions}, taking "
                        f"{', '.join(f'{d:.1f}' for d in durations)} s; "
                        f"{len(load.failed)} failed")
            self.assertGreaterEqual(load.offered[name], 100, name)
            self.assertGreaterEqual(rate, 0.99, name)
        self.assertEqual(load.failed, [])
        self.assertEqual(versions, list(range(versions[0], versions[0] + rotations)))
        return durations

    def wait_for_version(self, name, version, timeout=30):
        """Waits until keysync `name`'s textfile says its server holds `version`; its
        samples."""
        path = os.path.join(self.farm.dir, f"{name}.prom")
        deadline = time.monotonic() + timeout
        while True:
            metrics = textfile(path) if os.path.exists(path) else {}
            if tlsfarm.value(metrics, "tlscache_keysync_ring_version",
                             namespace="default") >= version:
                return metrics
            self.assertLess(time.monotonic(), deadline, f"{name} did not take version {version}")
            time.sleep(0.1)

    def assert_go_resumes_every_reconnect(self, lb, label):
        """Go's TLS 1.2 client, 20 connections: all but the first resume, by ticket."""
        marks = tlsfarm.go_resumptions(lb, "1.2")
        self.report(f"Go TLS 1.2 {label}: {marks}")
        self.assertEqual(marks, "." + "r" * (len(marks) - 1))

    def resumption_of_offered(self, lb, label):
        """Per TLS version, 200 connections of a single-use client: (offered, resumed)."""
        counts = {}
        for name, version in VERSIONS.items():
            client = tlsfarm.Client(version, single_use=True)
            counts[name] = tlsfarm.offered_and_resumed(client, "127.0.0.1", lb, RECONNECTS)
            self.report(f"{name} {label}: of {RECONNECTS} connections {counts[name][0]} offered "
                        f"a session, {counts[name][1]} of those resumed")
        return counts


class KeysyncNginxTest(KeysyncTestCase):
    def nginx_farm(self, slow_node=None):
        """tlscache-server, three stock nginx nodes (no preload) each with its keysync
        (--format=nginx, `nginx -s reload` on change; on `slow_node` the reload starts 5 s
        late, a reload slower than --ticket_min_distribution), HAProxy round robin."""
        cache = self.farm.cache()
        nginx = tlsfarm.require("nginx")

        def node(ip, port, name):
            directory = self.farm.keysync(cache.addr, name, "nginx")
            process = self.farm.nginx(
                ip, port, name, ticket_settings="",
                directives=f"include {directory}/ssl_session_ticket_keys.conf;")
            reload = (f"{nginx} -p {process.prefix} -c {process.config} "
                      f"-e {process.prefix}/logs/error.log -s reload")
            self.farm.keysync_argv[name].append(
                f"--on_change={'sleep 5 && ' if name == slow_node else ''}{reload}")
            self.farm.start_keysync(name)
            return process

        port, _ = self.farm.on_every_node(node)
        return cache, self.farm.haproxy(port)

    def test_tickets_of_stock_nginx_resume_on_every_node(self):
        _, lb = self.nginx_farm()
        self.assert_every_reconnect_resumes(lb, "stock nginx with keysync")
        # curl turns TLS 1.2 tickets off (session IDs only, which nginx does not cache by
        # default): TLS 1.2 tickets are Go's habit.
        self.assert_curl_resumes_every_reconnect(lb, "stock nginx with keysync",
                                                 versions=("1.3",))
        self.assert_go_resumes_every_reconnect(lb, "stock nginx with keysync")

    def test_three_rotations_as_fast_as_allowed_lose_no_resumption_with_a_slow_reload(self):
        # node3 takes 5 s to load each ring: without the barrier the second rotation would make
        # ACTIVE a key node3 does not have yet, and its connections would not resume.
        cache, lb = self.nginx_farm(slow_node="node3")
        durations = self.rotations_under_load(cache, lb)
        self.assertGreaterEqual(max(durations[1:]), 5.0, "no rotation waited for node3")
        # One reload per ring, none more.
        for name in ("node1", "node2", "node3"):
            metrics = self.wait_for_version(name, 4)
            self.assertEqual(
                tlsfarm.value(metrics, "tlscache_keysync_reloads_total", namespace="default"), 3)


class KeysyncHaproxyTest(KeysyncTestCase):
    def haproxy_farm(self):
        """tlscache-server, three stock HAProxy TLS terminators (no preload) each with its
        tls-ticket-keys file and a keysync that sets keys over the runtime API, HAProxy round
        robin in front."""
        cache = self.farm.cache()

        def node(ip, port, name):
            directory = self.farm.keysync(cache.addr, name, "haproxy")
            socket = os.path.join(self.farm.dir, f"{name}.sock")
            process = self.farm.haproxy_tls(
                ip, port, name, admin_socket=socket,
                bind_options=f"tls-ticket-keys {directory}/tls-ticket-keys")
            self.farm.keysync_argv[name].append(f"--haproxy_socket={socket}")
            self.farm.start_keysync(name)
            return process

        port, terminators = self.farm.on_every_node(node)
        return cache, self.farm.haproxy(port), terminators

    def test_tickets_resume_on_every_node_and_rotations_need_no_reload(self):
        cache, lb, terminators = self.haproxy_farm()
        pids = [t.popen.pid for t in terminators]
        counts = self.resumption_of_offered(lb, "stock HAProxy with keysync")
        for name, (offered, resumed) in counts.items():
            self.assertGreaterEqual(resumed, offered - 1, name)
        self.assertGreaterEqual(counts["TLSv1.2"][0], RECONNECTS - 1)
        self.assert_go_resumes_every_reconnect(lb, "stock HAProxy with keysync")
        self.rotations_under_load(cache, lb)
        for terminator, pid, name in zip(terminators, pids, ("node1", "node2", "node3")):
            self.assertIsNone(terminator.popen.poll(), f"{name} exited")
            self.assertEqual(terminator.popen.pid, pid)
            self.assertNotIn("reexecuting", terminator.output().lower())
            metrics = self.wait_for_version(name, 4)
            self.assertEqual(tlsfarm.value(
                metrics, "tlscache_keysync_runtime_updates_total", namespace="default"), 3)
            self.assertEqual(tlsfarm.value(
                metrics, "tlscache_keysync_reloads_total", namespace="default"), 0)

    def test_haproxy_with_ticket_keys_renews_no_tls13_ticket_with_keysync_or_without(self):
        # With tls-ticket-keys, HAProxy's ticket callback asks OpenSSL for a new ticket only
        # when the one offered was made under a key that no longer encrypts; OpenSSL 3.0 then
        # sends none after a TLS 1.3 resumption. A client that uses each ticket once (curl,
        # browsers) has none to offer on every other connection: behind three nodes with
        # keysync as on one HAProxy with a key file of its own. The runtime API sets keys; it
        # does not reach that answer.
        _, lb, _ = self.haproxy_farm()
        own_keys = os.path.join(self.farm.dir, "own-tls-ticket-keys")
        with open(own_keys, "w") as f:
            f.write("".join(base64.b64encode(os.urandom(80)).decode() + "\n" for _ in range(3)))
        alone_port = tlsfarm.free_port()
        self.farm.haproxy_tls("127.0.0.1", alone_port, "alone",
                              bind_options=f"tls-ticket-keys {own_keys}")
        for label, port in (("three nodes with keysync", lb),
                            ("one HAProxy with its own key file", alone_port)):
            client = tlsfarm.Client(VERSIONS["TLSv1.3"], single_use=True)
            offered, resumed = tlsfarm.offered_and_resumed(client, "127.0.0.1", port, 100)
            self.report(f"TLSv1.3 {label}: of 100 connections {offered} offered a ticket, "
                        f"{resumed} resumed")
            self.assertEqual(offered, 50, label)
            self.assertEqual(resumed, offered, label)
        marks = tlsfarm.curl_resumptions(lb, "1.3")
        self.report(f"curl TLS 1.3 through three nodes: {marks}")
        self.assertEqual(marks, ".r" * (len(marks) // 2))


class KeysyncApacheTest(KeysyncTestCase):
    def test_apache_resumes_across_nodes_and_a_rotation_costs_one_full_handshake(self):
        cache = self.farm.cache()
        apache2 = tlsfarm.require("apache2")

        def node(ip, port, name):
            directory = self.farm.keysync(cache.addr, name, "apache")
            process = self.farm.apache(ip, port, name,
                                       ticket_key_file=f"{directory}/ticket.key")
            self.farm.keysync_argv[name].append(
                f"--on_change={apache2} -f {process.config} -k graceful")
            self.farm.start_keysync(name)
            return process

        port, _ = self.farm.on_every_node(node)
        lb = self.farm.haproxy(port)
        counts = self.resumption_of_offered(lb, "stock Apache with keysync")
        self.assertGreaterEqual(counts["TLSv1.2"][1], RECONNECTS - 1)
        for name, (offered, resumed) in counts.items():
            self.assertGreaterEqual(resumed, offered - 1, name)
        self.assert_go_resumes_every_reconnect(lb, "stock Apache with keysync")

        # Clients holding a ticket when the key changes: Apache has one key, so none of them
        # resumes once; the connection after that does.
        clients = [tlsfarm.Client(VERSIONS["TLSv1.2"]) for _ in range(30)]
        for client in clients:
            client.connect("127.0.0.1", lb)
        version, _ = rotate(cache.addr)
        start = time.monotonic()
        while not all(
                tlsfarm.value(textfile(os.path.join(self.farm.dir, f"{name}.prom")),
                              "tlscache_keysync_ring_version", namespace="default") >= version
                for name in ("node1", "node2", "node3")):
            self.assertLess(time.monotonic() - start, 30, "the nodes did not take the ring")
            time.sleep(0.2)
        time.sleep(1)  # the graceful restarts' new children serve
        after = sum(client.connect("127.0.0.1", lb)[0] for client in clients)
        again = sum(client.connect("127.0.0.1", lb)[0] for client in clients)
        self.report(f"a rotation: of 30 TLS 1.2 clients holding a ticket, {after} resumed on "
                    f"their next connection and {again} on the one after (the nodes took the "
                    f"new key {time.monotonic() - start:.1f} s after the rotation)")
        self.assertEqual(after, 0)
        self.assertGreaterEqual(again, 29)


class RotationBarrierTest(KeysyncTestCase):
    # Seconds; shorter than the default 30 s so that the test waits less, longer than two
    # --ticket_min_distribution (3 s) so that a rotation that did not wait for it shows.
    LEASE = 15

    def test_a_stopped_keysync_holds_a_rotation_until_its_lease_ends_then_is_named(self):
        metrics_port = tlsfarm.free_port()
        cache = self.farm.cache(extra=[f"--ticket_follower_lease={self.LEASE}s",
                                       f"--metrics_listen=127.0.0.1:{metrics_port}"])
        for name in ("keysync-a", "keysync-b"):
            self.farm.keysync(cache.addr, name, "nginx")
        syncs = {name: self.farm.start_keysync(name) for name in ("keysync-a", "keysync-b")}

        def holding(version):
            out = keys_show(cache.addr)
            return all(re.search(rf"^{name} +{version} ", out, re.M) for name in syncs)

        deadline = time.monotonic() + 10
        while not holding(1):
            self.assertLess(time.monotonic(), deadline, keys_show(cache.addr))
            time.sleep(0.1)
        rotate(cache.addr)
        deadline = time.monotonic() + 10
        while not holding(2):
            self.assertLess(time.monotonic(), deadline, keys_show(cache.addr))
            time.sleep(0.1)
        syncs["keysync-b"].popen.send_signal(signal.SIGSTOP)  # reports nothing from now on
        time.sleep(0.2)  # a report on its way lands
        left = float(re.search(r"^keysync-b +2 +([\d.]+)s left", keys_show(cache.addr),
                               re.M).group(1))
        lease_end = time.monotonic() + left
        try:
            rotate(cache.addr)  # b holds version 2, whose PENDING key this makes ACTIVE
            start = time.monotonic()
            version, _ = rotate(cache.addr)  # b lacks version 3's PENDING key
            done = time.monotonic()
        finally:
            syncs["keysync-b"].popen.send_signal(signal.SIGCONT)
        self.report(f"the rotation to version {version} waited {done - start:.1f} s, until "
                    f"{done - lease_end:+.1f} s from the end of keysync-b's lease "
                    f"({self.LEASE} s)")
        self.assertEqual(version, 4)
        self.assertGreaterEqual(done, lease_end - 0.3, "did not wait for the lease")
        self.assertLess(done, lease_end + 5)
        self.assertRegex(cache.output(), r"without followers that lag: keysync-b \(version 2\) "
                                         r"whose lease ended")
        samples = tlsfarm.scrape(metrics_port)
        self.assertEqual(tlsfarm.value(samples, "tlscache_ticket_followers_left_behind_total",
                                       namespace="default", follower="keysync-b",
                                       reason="lease_ended"), 1)
        self.assertEqual(tlsfarm.value(samples, "tlscache_ticket_followers_left_behind_total",
                                       namespace="default", follower="keysync-a",
                                       reason="lease_ended"), 0)
        # Woken up, b catches up and counts again.
        deadline = time.monotonic() + 15
        while not holding(4):
            self.assertLess(time.monotonic(), deadline, keys_show(cache.addr))
            time.sleep(0.2)

    def test_the_textfile_of_a_keysync_parses_and_says_what_the_server_holds(self):
        cache = self.farm.cache()
        self.farm.keysync(cache.addr, "keysync-a", "haproxy")
        sync = self.farm.start_keysync("keysync-a")
        path = os.path.join(self.farm.dir, "keysync-a.prom")
        deadline = time.monotonic() + 10
        while not os.path.exists(path) or tlsfarm.value(
                textfile(path), "tlscache_keysync_ring_version", namespace="default") != 1:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        samples = textfile(path)
        self.assertGreater(tlsfarm.value(samples, "tlscache_textfile_updated_seconds",
                                         namespace="default"), time.time() - 30)
        self.assertEqual(sync.stop(), 0)
        self.assertFalse(os.path.exists(path), "a clean exit leaves no stale file")
        self.assertNotIn("keysync-a", keys_show(cache.addr), "a clean exit leaves the ring")

    def test_the_plugins_processes_follow_the_ring_and_leave_when_they_exit(self):
        cache = self.farm.cache()
        port, nodes = self.farm.on_every_node(
            lambda ip, port, name: self.farm.node(ip, port, f"addr={cache.addr};tickets=farm",
                                                  name=name))
        for ip in tlsfarm.NODE_IPS:  # a handshake: each node's process follows the ring
            tlsfarm.Client(VERSIONS["TLSv1.2"]).connect(ip, port)

        def followers():
            return re.findall(r"^(\S+/tlscache-tls-server\[\d+\]) +(\d+) ",
                              keys_show(cache.addr), re.M)

        deadline = time.monotonic() + 10
        while len(followers()) < 3:
            self.assertLess(time.monotonic(), deadline, keys_show(cache.addr))
            time.sleep(0.1)
        self.assertEqual({version for _, version in followers()}, {"1"})
        version, _ = rotate(cache.addr)
        deadline = time.monotonic() + 10
        while {v for _, v in followers()} != {str(version)}:
            self.assertLess(time.monotonic(), deadline, keys_show(cache.addr))
            time.sleep(0.1)
        self.assertEqual(nodes[0].stop(), 0)
        self.assertEqual(len(followers()), 2, "a process that exits leaves the ring")

    def test_key_files_are_private_and_a_directory_on_disk_draws_a_warning(self):
        cache = self.farm.cache()
        keysync = [tlsfarm.built("tlscache-keysync"), f"--addr={cache.addr}", "--format=nginx",
                   "--once"]
        on_tmpfs = self.farm.keysync(cache.addr, "tmpfs", "nginx")
        on_disk = tempfile.mkdtemp(prefix="keys-", dir=os.path.dirname(tlsfarm.BIN_DIR))
        self.addCleanup(shutil.rmtree, on_disk, ignore_errors=True)
        kinds = {d: subprocess.run(["stat", "-f", "-c", "%T", d], capture_output=True,
                                   text=True, check=True).stdout.strip()
                 for d in (on_tmpfs, on_disk)}
        self.assertEqual(kinds[on_tmpfs], "tmpfs")
        self.assertNotIn(kinds[on_disk], ("tmpfs", "ramfs"))
        quiet = subprocess.run([*keysync, f"--dir={on_tmpfs}"], capture_output=True, text=True)
        warned = subprocess.run([*keysync, f"--dir={on_disk}", "--group=root"],
                                capture_output=True, text=True)
        self.assertEqual((quiet.returncode, warned.returncode), (0, 0), warned.stderr)
        self.assertNotIn("not on tmpfs", quiet.stderr)
        self.assertIn(f"{on_disk} is not on tmpfs", warned.stderr)
        for directory, mode in ((on_tmpfs, 0o600), (on_disk, 0o640)):
            names = os.listdir(directory)
            self.assertEqual(len([n for n in names if n.endswith(".key")]), 2, names)
            for name in names:
                self.assertEqual(os.stat(os.path.join(directory, name)).st_mode & 0o777, mode,
                                 name)
        # The key bytes appear nowhere in what it printed.
        for name in os.listdir(on_tmpfs):
            if name.endswith(".key"):
                with open(os.path.join(on_tmpfs, name), "rb") as f:
                    secret = f.read()[16:]
                for text in (quiet.stdout + quiet.stderr, warned.stdout + warned.stderr):
                    self.assertNotIn(secret.hex(), text)
                    self.assertNotIn(base64.b64encode(secret).decode()[:20], text)

    def test_bad_flags_are_named_and_exit_non_zero(self):
        keysync = tlsfarm.built("tlscache-keysync")
        for argv, message in (
                (["--format=envoy", "--dir=/tmp"], "--format=envoy: must be nginx, haproxy or apache"),
                (["--format=nginx"], "--dir: required"),
                (["--format=nginx", "--dir=/nonexistent-dir"], "--dir=/nonexistent-dir: not a directory"),
                (["--format=nginx", "--dir=/tmp", "--haproxy_socket=/x.sock"],
                 "--haproxy_socket: only with --format=haproxy"),
                (["--format=nginx", "--dir=/tmp", "--follower=a b"], "--follower: follower may only")):
            result = subprocess.run([keysync, *argv], capture_output=True, text=True, timeout=30)
            self.assertEqual(result.returncode, 2, argv)
            self.assertIn(message, result.stderr, argv)

