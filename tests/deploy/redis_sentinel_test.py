"""The prod overlay's Redis with Sentinel, run as its pods run it: real redis-server and
redis-sentinel processes on loopback, configured by the deploy's own scripts (redis-init.sh,
sentinel-init.sh, find-master.sh, redis-prestop.sh, redis-probe.sh, redis-auth-sync.sh) from
its own redis.conf and sentinel files, with the Secret's passwords, and a real tlscache-server
on the service's ACL user. A pod's address is 127.0.0.1 and its port; SELF_HOST, SENTINELS,
REDIS_PODS, BOOTSTRAP_MASTER and the directories stand for the names a StatefulSet gives, and
a pod's directory for its volume. The init scripts ask again every 0.2 s instead of 2 s."""

import os
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
import time
import unittest

from tlsfarm import Farm, built, free_port, http_get, require, scrape, value

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROD = os.path.join(ROOT, "deploy", "k8s", "overlays", "prod")
PASSWORD = "test-admin-password"
SERVICE_PASSWORD = "test-service-password"


class LyingSentinel(socketserver.ThreadingTCPServer):
    """Answers like a sentinel, naming `master` ("HOST PORT") as the master."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port, master):
        self.master = master.split()
        super().__init__(("127.0.0.1", port), LyingSentinel.Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            while True:
                line = self.rfile.readline()
                if not line.startswith(b"*"):
                    return
                args = []
                for _ in range(int(line[1:])):
                    length = int(self.rfile.readline()[1:])
                    args.append(self.rfile.read(length + 2)[:-2].decode().lower())
                if args[:2] == ["sentinel", "get-master-addr-by-name"]:
                    host, port = self.server.master
                    self.wfile.write(f"*2\r\n${len(host)}\r\n{host}\r\n${len(port)}\r\n{port}"
                                     f"\r\n".encode())
                else:
                    self.wfile.write(b"+OK\r\n")


class RedisPodsTestCase(unittest.TestCase):
    """Three Redis pods (redis-0..2) and three sentinels (sentinel-0..2), each on its own port
    and directory, started, stopped and restarted as Kubernetes would."""

    def setUp(self):
        self.redis_server = require("redis-server")
        self.redis_cli = require("redis-cli")
        self.dir = tempfile.mkdtemp(prefix="tlscache-redis-")
        self.secrets = os.path.join(self.dir, "secrets")
        os.makedirs(self.secrets)
        self.set_secret("password", PASSWORD)
        self.set_secret("service", f"tlscache {SERVICE_PASSWORD}")
        self.processes = {}
        self.paused = set()
        self.redis_ports = [free_port() for _ in range(3)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.farm = None

    def tearDown(self):
        if self.farm is not None:
            self.farm.close()
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def set_secret(self, name, value):
        """Writes (or, with None, removes) one of the Secret's files, as the kubelet does."""
        path = os.path.join(self.secrets, name)
        if value is None:
            if os.path.exists(path):
                os.remove(path)
            return
        with open(path + ".new", "w") as f:
            f.write(value)
        os.replace(path + ".new", path)

    def environment(self, data_dir, **values):
        env = {"PATH": os.environ["PATH"], "CONFIG_DIR": PROD, "DATA_DIR": data_dir,
               "SELF_HOST": "127.0.0.1", "SECRETS_DIR": self.secrets,
               "SENTINELS": " ".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
               "REDIS_PODS": " ".join(f"127.0.0.1:{p}" for p in self.redis_ports),
               "BOOTSTRAP_MASTER": f"127.0.0.1:{self.redis_ports[0]}",
               "RETRY_INTERVAL": "0.2", "INIT_TIMEOUT": "60"}
        env.update(values)
        return env

    def pod_dir(self, name):
        path = os.path.join(self.dir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def run_script(self, script, name, *args, timeout=90, **values):
        """Runs one of the deploy's scripts for pod `name`; returns (exit code, output)."""
        env = self.environment(self.pod_dir(name), **values)
        if name.startswith("redis-"):
            env.setdefault("REDIS_PORT", str(self.redis_ports[int(name[-1])]))
        elif name.startswith("sentinel-"):
            env.setdefault("SENTINEL_PORT", str(self.sentinel_ports[int(name[-1])]))
        result = subprocess.run(["sh", os.path.join(PROD, script), *args], capture_output=True,
                                text=True, timeout=timeout, env=env)
        return result.returncode, result.stdout + result.stderr

    def start_redis(self, index, **values):
        """Runs redis-init.sh for redis-INDEX, then redis-server; returns the init's output."""
        name = f"redis-{index}"
        code, output = self.run_script("redis-init.sh", name, **values)
        self.assertEqual(code, 0, output)
        self.processes[name] = subprocess.Popen(
            [self.redis_server, os.path.join(self.dir, name, "redis.conf"), "--bind",
             "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.pod_dir(name))
        self.await_answer(self.redis_ports[index], "PING", "PONG")
        return output

    def start_sentinel(self, index, **values):
        name = f"sentinel-{index}"
        code, output = self.run_script("sentinel-init.sh", name, **values)
        self.assertEqual(code, 0, output)
        self.processes[name] = subprocess.Popen(
            [self.redis_server, os.path.join(self.dir, name, "sentinel.conf"), "--sentinel",
             "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.await_answer(self.sentinel_ports[index], "PING", "PONG")
        return output

    def start_all_at_once(self, names):
        """Starts the pods `names` together, as a StatefulSet with Parallel pod management
        does after a full restart: each runs its init (which may wait for the others) and
        then its server. Returns each init's output."""
        outputs = {}
        errors = []

        def start(name):
            try:
                kind, index = name.rsplit("-", 1)
                start = self.start_redis if kind == "redis" else self.start_sentinel
                outputs[name] = start(int(index))
            except Exception as error:  # reported below, on the test's thread
                errors.append(f"{name}: {error}")

        threads = [threading.Thread(target=start, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        self.assertEqual(errors, [])
        return outputs

    def stop(self, name, sig=signal.SIGKILL):
        process = self.processes.pop(name)
        process.send_signal(sig)
        process.wait()

    def pause(self, name):
        self.processes[name].send_signal(signal.SIGSTOP)
        self.paused.add(name)

    def resume(self, name):
        self.processes[name].send_signal(signal.SIGCONT)
        self.paused.discard(name)

    def cli(self, port, *args, user=None, password=PASSWORD):
        auth = ["--user", user, "--pass", password] if user else ["-a", password]
        return subprocess.run([self.redis_cli, "-p", str(port), "--no-auth-warning", *auth,
                               "--raw", *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()

    def await_answer(self, port, command, expected, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            answer = self.cli(port, *command.split())
            if expected in answer:
                return answer
            self.assertLess(time.monotonic(), deadline, f"{command} on {port}: {answer!r}")
            time.sleep(0.05)

    def role(self, index):
        info = self.cli(self.redis_ports[index], "INFO", "replication")
        return next((line.split(":")[1] for line in info.splitlines()
                     if line.startswith("role:")), None)

    def masters(self):
        return [i for i in range(3) if f"redis-{i}" in self.processes and
                f"redis-{i}" not in self.paused and self.role(i) == "master"]

    def start_deployment(self):
        """A new deployment, as the StatefulSets start it (every pod at once); returns once
        the replicas are in sync and every sentinel knows both."""
        outputs = self.start_all_at_once([f"redis-{i}" for i in range(3)] +
                                         [f"sentinel-{i}" for i in range(3)])
        self.assertIn("(this pod) (a new deployment: every Redis pod answers and all are empty)",
                      outputs["redis-0"])
        for index in (1, 2):
            self.await_answer(self.redis_ports[index], "INFO replication",
                              "master_link_status:up")
        for port in self.sentinel_ports:
            self.await_answer(port, "SENTINEL replicas tlscache", str(self.redis_ports[2]))
            self.await_answer(port, "SENTINEL replicas tlscache", str(self.redis_ports[1]))
        return outputs

    def service(self, password_file=None, extra=()):
        """tlscache-server on the sentinels, as the service's ACL user; returns the process
        (with .metrics_port)."""
        if self.farm is None:
            self.farm = Farm()
        credentials = password_file or os.path.join(self.secrets, "service")
        url = ("redis-sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) +
               "/tlscache")
        metrics_port = free_port()
        cache = self.farm.cache(store=url, extra=[
            f"--redis_password_file={credentials}", f"--sentinel_password_file={credentials}",
            f"--metrics_listen=127.0.0.1:{metrics_port}", *extra])
        cache.metrics_port = metrics_port
        return cache

    def await_ready(self, cache, timeout=30):
        deadline = time.monotonic() + timeout
        while http_get(cache.metrics_port, "/readyz")[0] != 200:
            self.assertLess(time.monotonic(), deadline,
                            f"the service is not ready: {cache.output()[-2000:]}")
            time.sleep(0.1)

    def ctl(self, cache, *args):
        result = subprocess.run([built("tlscachectl"), f"--addr={cache.addr}", *args],
                                capture_output=True, text=True, timeout=30)
        return result.returncode, result.stdout + result.stderr

    def put_sessions(self, cache, ids):
        session = os.path.join(self.dir, "session.bin")
        with open(session, "wb") as f:
            f.write(b"session-bytes-" * 4)
        for session_id in ids:
            code, output = self.ctl(cache, "put", session_id, session, "--ttl=1h")
            self.assertEqual(code, 0, output)

    def missing(self, cache, ids):
        return [i for i in ids if self.ctl(cache, "get", i)[0] != 0]

    def ring_version(self, cache):
        code, output = self.ctl(cache, "keys", "show")
        self.assertEqual(code, 0, output)
        return next(line for line in output.splitlines() if "version" in line)


class RedisSentinelTest(RedisPodsTestCase):
    def test_a_master_killed_and_restarted_at_once_keeps_what_was_written(self):
        self.start_deployment()
        master, replica = self.redis_ports[0], self.redis_ports[1]
        # The way tlscache writes: sessions with a TTL, a ring without one.
        script = "for i=1,1000 do redis.call('SET', 'tlscache:s' .. i, 'x', 'EX', 3600) end"
        self.cli(master, "EVAL", script, "0")
        self.cli(master, "SET", "tlscache:@ring:default", "keys")
        self.assertEqual(self.cli(master, "DBSIZE"), "1001")
        self.await_answer(replica, "DBSIZE", "1001")
        self.stop("redis-0")  # as the OOM killer does
        # Restarted at once: the sentinels (down-after-milliseconds 5000) still name it.
        output = self.start_redis(0)
        self.assertIn("named by a majority of the sentinels", output)
        self.await_answer(master, "INFO replication", "role:master")
        self.assertEqual(self.cli(master, "DBSIZE"), "1001")
        self.assertEqual(self.cli(master, "GET", "tlscache:@ring:default"), "keys")
        # The replica syncs again from it and keeps every entry.
        self.await_answer(replica, "INFO replication", "master_link_status:up")
        self.await_answer(replica, "DBSIZE", "1001")
        # And both ask for a password.
        result = subprocess.run([self.redis_cli, "-p", str(master), "DBSIZE"],
                                capture_output=True, text=True, timeout=10)
        self.assertIn("NOAUTH", result.stdout + result.stderr)

    def test_a_master_stopping_hands_its_role_to_a_replica_first(self):
        self.start_deployment()
        master = self.redis_ports[0]
        self.cli(master, "SET", "tlscache:@ring:default", "keys")
        # A replica's preStop returns at once.
        code, output = self.run_script("redis-prestop.sh", "redis-1")
        self.assertEqual((code, output), (0, ""))
        started = time.monotonic()
        code, output = self.run_script("redis-prestop.sh", "redis-0")
        seconds = time.monotonic() - started
        print(f"\n  figure: the master's preStop handed over in {seconds:.1f} s: "
              f"{output.strip()!r}", flush=True)
        self.assertEqual(code, 0, output)
        self.assertIn("the master is now 127.0.0.1 ", output)
        new = next(i for i in (1, 2) if f"127.0.0.1 {self.redis_ports[i]}" in output)
        self.assertEqual(self.role(new), "master")
        self.assertEqual(self.cli(self.redis_ports[new], "GET", "tlscache:@ring:default"), "keys")
        for port in self.sentinel_ports:
            self.assertEqual(self.cli(port, "SENTINEL", "get-master-addr-by-name", "tlscache"),
                             f"127.0.0.1\n{self.redis_ports[new]}")

    def test_a_restarted_pod_finds_the_master_with_one_sentinel_down_or_lying(self):
        # As after a failover: redis-1 is the master, redis-0 comes back and must follow it.
        old, current = self.redis_ports[0], self.redis_ports[1]
        with open(os.path.join(self.pod_dir("redis-1"), "redis.conf"), "w") as f:
            f.write("# left by a failover that made this pod the master\n")
        self.start_redis(1)
        for index in range(3):
            self.start_sentinel(index)

        def follows(**values):
            code, output = self.run_script("redis-init.sh", "redis-0", INIT_TIMEOUT="1",
                                           **values)
            with open(os.path.join(self.dir, "redis-0", "redis.conf")) as f:
                replicaof = [line for line in f.read().splitlines()
                             if line.startswith("replicaof ")]
            return code, output, replicaof

        code, output, replicaof = follows()
        self.assertEqual((code, replicaof), (0, [f"replicaof 127.0.0.1 {current}"]), output)

        self.stop("sentinel-2")
        code, output, replicaof = follows()
        self.assertEqual((code, replicaof), (0, [f"replicaof 127.0.0.1 {current}"]), output)

        # A sentinel that names the restarted pod itself would make it a second master.
        liar = LyingSentinel(self.sentinel_ports[2], f"127.0.0.1 {old}")
        self.addCleanup(liar.server_close)
        self.addCleanup(liar.shutdown)
        code, output, replicaof = follows()
        self.assertEqual((code, replicaof), (0, [f"replicaof 127.0.0.1 {current}"]), output)

        # The config it wrote works: redis-0 replicates the current master.
        self.processes["redis-0"] = subprocess.Popen(
            [self.redis_server, os.path.join(self.dir, "redis-0", "redis.conf"), "--bind",
             "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.pod_dir("redis-0"))
        self.await_answer(old, "INFO replication", "master_link_status:up")
        self.assertIn(f"master_port:{current}", self.cli(old, "INFO", "replication"))
        self.stop("redis-0")

        # With one down and one lying no majority agrees: the pod waits and asks again,
        # rather than guess.
        self.stop("sentinel-1")
        code, output, _ = follows()
        self.assertNotEqual(code, 0)
        self.assertIn("do not agree", output)

    def test_a_name_that_does_not_resolve_is_not_an_empty_cluster(self):
        # No sentinel answers because DNS fails: the init waits, it does not decide.
        code, output = self.run_script(
            "redis-init.sh", "redis-0", INIT_TIMEOUT="1",
            SENTINELS="tlscache-sentinel-0.tlscache-sentinel.invalid:26379")
        self.assertNotEqual(code, 0, output)
        self.assertIn("cannot resolve tlscache-sentinel-0.tlscache-sentinel.invalid", output)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "redis-0", "redis.conf")))

    def test_probes_say_ready_only_when_a_replica_is_in_sync(self):
        self.start_deployment()

        def probe(name, *check):
            return self.run_script("redis-probe.sh", name, *check, timeout=30)

        self.assertEqual(probe("redis-0", "redis", "ready")[0], 0)
        self.assertEqual(probe("redis-1", "redis", "ready")[0], 0)
        self.assertEqual(probe("sentinel-0", "sentinel", "ready")[0], 0)
        self.assertEqual(probe("sentinel-0", "sentinel", "alive")[0], 0)
        # A replica whose master is gone is not ready (a rollout waits, a preStop skips it).
        self.pause("redis-0")
        self.addCleanup(lambda: "redis-0" in self.processes and self.resume("redis-0"))
        self.cli(self.redis_ports[1], "CLIENT", "KILL", "TYPE", "master")
        code, output = probe("redis-1", "redis", "ready")
        self.assertEqual(code, 1, output)
        self.assertIn("link down", output)
        self.resume("redis-0")
        self.await_answer(self.redis_ports[1], "INFO replication", "master_link_status:up")
        self.assertEqual(probe("redis-1", "redis", "ready")[0], 0)
        # A replica in a full resync is not ready until it has loaded the master's data. The
        # master waits repl-diskless-sync-delay (5 s by default; 10 s here, so that a busy
        # machine probes within it) before it sends the data set.
        self.cli(self.redis_ports[0], "EVAL",
                 "for i=1,100000 do redis.call('SET', 'tlscache:s' .. i, string.rep('x', 100))"
                 " end", "0")
        self.cli(self.redis_ports[0], "CONFIG", "SET", "repl-diskless-sync-delay", "10")
        self.stop("redis-2")
        shutil.rmtree(os.path.join(self.dir, "redis-2"))
        self.start_redis(2)
        code, output = probe("redis-2", "redis", "ready")
        self.assertEqual(code, 1, output)
        self.assertIn("link down", output)
        self.await_answer(self.redis_ports[2], "INFO replication", "master_link_status:up")
        self.await_answer(self.redis_ports[2], "DBSIZE", "100000")
        self.assertEqual(probe("redis-2", "redis", "ready")[0], 0)
        # A sentinel that stopped answering is not alive.
        self.pause("sentinel-0")
        self.addCleanup(lambda: self.resume("sentinel-0"))
        code, output = probe("sentinel-0", "sentinel", "alive")
        self.assertEqual(code, 1, output)


class FullRestartTest(RedisPodsTestCase):
    """Every Redis and every sentinel restarted together (a cluster restart, all pods
    deleted, the StatefulSets re-created) after a rollout has left pod 0 a replica."""

    IDS = [f"{i:04x}" for i in range(40)]

    def deployment_after_a_rollout(self):
        """A running deployment, the service writing sessions and a ring, then pod 0 handing
        the master role over and coming back as a replica (as a rollout leaves it)."""
        self.start_deployment()
        cache = self.service()
        self.await_ready(cache)
        self.put_sessions(cache, self.IDS[:20])
        self.assertEqual(self.ctl(cache, "keys", "rotate")[0], 0)
        code, output = self.run_script("redis-prestop.sh", "redis-0")
        self.assertEqual(code, 0, output)
        self.stop("redis-0", signal.SIGTERM)
        self.start_redis(0)
        self.assertEqual(self.role(0), "slave")
        self.await_answer(self.redis_ports[0], "INFO replication", "master_link_status:up")
        self.await_ready(cache)
        self.put_sessions(cache, self.IDS[20:])
        ring = self.ring_version(cache)
        master = self.masters()
        self.assertEqual(len(master), 1)
        for index in range(3):
            self.await_answer(self.redis_ports[index], "DBSIZE",
                              self.cli(self.redis_ports[master[0]], "DBSIZE"))
        return cache, ring, master[0]

    def restart_everything(self, cache, wipe=()):
        for name in list(self.processes):
            self.stop(name)
        self.farm.close()
        self.farm = None
        for name in wipe:
            shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
        started = time.monotonic()
        outputs = self.start_all_at_once([f"redis-{i}" for i in range(3)] +
                                         [f"sentinel-{i}" for i in range(3)])
        cache = self.service()
        self.await_ready(cache, timeout=60)
        return outputs, time.monotonic() - started, cache

    def check_after(self, cache, ring, outputs, seconds, label):
        masters = self.masters()
        self.assertEqual(len(masters), 1, outputs)
        self.assertEqual(self.missing(cache, self.IDS), [], outputs)
        self.assertEqual(self.ring_version(cache), ring)
        print(f"\n  figure: {label}: one master (redis-{masters[0]}), {len(self.IDS)} of "
              f"{len(self.IDS)} sessions and the ring ({ring.strip()}) kept, the service ready "
              f"{seconds:.1f} s after the restart began", flush=True)
        for name in sorted(outputs):
            print(f"    {name}: {outputs[name].strip().splitlines()[-1]}", flush=True)
        return masters[0]

    def test_with_every_volume_kept(self):
        cache, ring, master = self.deployment_after_a_rollout()
        outputs, seconds, cache = self.restart_everything(cache)
        self.assertEqual(self.check_after(cache, ring, outputs, seconds, "every volume kept"),
                         master)
        self.assertIn("(its own state)", outputs["sentinel-0"])

    def test_with_pod_0s_data_gone(self):
        cache, ring, master = self.deployment_after_a_rollout()
        outputs, seconds, cache = self.restart_everything(cache, wipe=["redis-0"])
        self.assertEqual(self.check_after(cache, ring, outputs, seconds, "pod 0's data gone"),
                         master)

    def test_with_pod_0s_data_and_every_sentinels_state_gone(self):
        cache, ring, master = self.deployment_after_a_rollout()
        outputs, seconds, cache = self.restart_everything(
            cache, wipe=["redis-0", "sentinel-0", "sentinel-1", "sentinel-2"])
        self.assertEqual(
            self.check_after(cache, ring, outputs, seconds,
                             "pod 0's data and the sentinels' state gone"), master)
        self.assertIn("the Redis pod reporting role:master", outputs["sentinel-0"])

    def test_with_the_masters_data_gone_and_the_sentinels_state_kept(self):
        # The sentinels name the master whose volume is new: it must not come back empty.
        cache, ring, master = self.deployment_after_a_rollout()
        outputs, seconds, cache = self.restart_everything(cache, wipe=[f"redis-{master}"])
        self.assertNotIn("(this pod)", outputs[f"redis-{master}"])
        self.check_after(cache, ring, outputs, seconds,
                         "the master's data gone, the sentinels' state kept")

    def test_with_the_masters_data_gone(self):
        # The master's volume is lost: the replicas hold everything, none is a master.
        cache, ring, master = self.deployment_after_a_rollout()
        outputs, seconds, cache = self.restart_everything(
            cache, wipe=[f"redis-{master}", "sentinel-0", "sentinel-1", "sentinel-2"])
        self.check_after(cache, ring, outputs, seconds, "the master's data gone")


class PartitionTest(RedisPodsTestCase):
    def test_a_master_cut_off_with_one_sentinel_stops_taking_writes_and_loses_no_rotation(self):
        """The old master (redis-0), sentinel-0 and a tlscache-server on one side; the
        replicas and the two other sentinels on the other. Each side is shown the partition
        in turn by pausing (SIGSTOP) the other: first the minority side runs alone, then the
        majority side, then both again."""
        self.start_deployment()
        cache = self.service()
        self.await_ready(cache)
        before = [f"b{i:03x}" for i in range(10)]
        self.put_sessions(cache, before)
        # The store's own view of Redis (metrics, for the alerts): both replicas good, every
        # sentinel naming the master.
        deadline = time.monotonic() + 30
        while value(scrape(cache.metrics_port), "tlscache_redis_master_good_replicas") != 2:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.5)
        samples = scrape(cache.metrics_port)
        self.assertEqual(value(samples, "tlscache_redis_sentinels"), 3)
        self.assertEqual(value(samples, "tlscache_redis_sentinels_agreeing"), 3)
        self.assertEqual(value(samples, "tlscache_redis_memory_max_bytes"), 1 << 30)
        self.assertEqual(value(samples, "tlscache_redis_aof_ok"), 1)
        majority_side = ["redis-1", "redis-2", "sentinel-1", "sentinel-2"]

        # The minority side alone: sentinel-0 still names redis-0, which still has its data.
        for name in majority_side:
            self.pause(name)
        self.addCleanup(lambda: [self.resume(n) for n in majority_side if n in self.processes])
        cut = time.monotonic()
        session = os.path.join(self.dir, "session.bin")
        # Puts every 100 ms for 15 s; when the server noticed (no majority) read off its
        # metrics between them.
        acknowledged, refused, noticed = [], 0, None
        while time.monotonic() - cut < 15:
            session_id = f"c{len(acknowledged) + refused:03x}"
            sent = time.monotonic() - cut
            code, _ = self.ctl(cache, "put", session_id, session, "--ttl=1h", "--timeout=1s")
            if code == 0:
                acknowledged.append((session_id, sent))
            else:
                refused += 1
            if noticed is None and value(scrape(cache.metrics_port),
                                         "tlscache_redis_sentinels_agreeing") == 0:
                noticed = time.monotonic() - cut
            time.sleep(0.1)
        self.assertEqual(self.cli(self.sentinel_ports[0], "SENTINEL", "get-master-addr-by-name",
                                  "tlscache"), f"127.0.0.1\n{self.redis_ports[0]}")
        # The server stopped writing once it saw no majority of the sentinels (two checks in a
        # row): no put sent after it did was acknowledged. So did Redis itself, once its
        # replicas' lag passed 10 s.
        self.assertIsNotNone(noticed)
        self.assertLess(noticed, 8)
        self.assertEqual([a for a in acknowledged if a[1] > noticed], [])
        self.assertGreater(refused, 20)
        self.assertIn("NOREPLICAS", self.cli(self.redis_ports[0], "SET", "tlscache:x", "1"))
        # A rotation is refused too: the server writes nothing without a majority.
        self.assertNotEqual(self.ctl(cache, "keys", "rotate", "--timeout=2s")[0], 0)
        samples = scrape(cache.metrics_port)
        self.assertEqual(value(samples, "tlscache_redis_sentinels_agreeing"), 0)
        self.assertGreaterEqual(value(samples, "tlscache_redis_master_changes_total"), 1)
        self.assertEqual(value(samples, "tlscache_serving"), 0)

        # The majority side alone: it elects a new master, and the server follows it.
        for name in ("redis-0", "sentinel-0"):
            self.pause(name)
        for name in majority_side:
            self.resume(name)
        # Sentinel's first attempt can fail on a busy machine, and it tries again after twice
        # failover-timeout (60 s): up to 150 s.
        deadline = time.monotonic() + 150
        after = []
        while len(after) < 10:
            self.assertLess(time.monotonic(), deadline, cache.output()[-3000:])
            session_id = f"a{len(after):03x}"
            if self.ctl(cache, "put", session_id, session, "--ttl=1h", "--timeout=1s")[0] == 0:
                after.append(session_id)
            else:
                time.sleep(0.2)
        self.assertEqual(self.ctl(cache, "keys", "rotate")[0], 0)
        ring = self.ring_version(cache)
        new = self.masters()
        self.assertEqual(len([m for m in new if m != 0]), 1)

        # Healed: the old master rejoins as a replica; nothing acknowledged is lost.
        for name in ("redis-0", "sentinel-0"):
            self.resume(name)
        self.await_answer(self.redis_ports[0], "INFO replication", "role:slave", timeout=60)
        self.await_answer(self.redis_ports[0], "INFO replication", "master_link_status:up")
        self.assertEqual(self.masters(), [m for m in new if m != 0])
        self.assertEqual(self.missing(cache, before + after), [])
        self.assertEqual(self.ring_version(cache), ring)
        print(f"\n  figure: cut off with one sentinel, the server stopped writing "
              f"{noticed:.1f} s after the cut: {len(acknowledged)} puts acknowledged before "
              f"(by the cut-off master), {refused} refused after, a rotation refused; Redis "
              f"alone answers NOREPLICAS after "
              f"min-replicas-max-lag (10 s). After the heal {len(before) + len(after)} of "
              f"{len(before) + len(after)} sessions acknowledged before the cut and on the "
              f"majority side, and the ring rotated there, are there", flush=True)


class RedisAuthTest(RedisPodsTestCase):
    def test_the_service_user_does_what_the_service_does_and_nothing_else(self):
        self.start_deployment()
        cache = self.service()
        self.await_ready(cache)
        ids = [f"{i:04x}" for i in range(10)]
        self.put_sessions(cache, ids)
        self.assertEqual(self.missing(cache, ids), [])
        self.assertEqual(self.ctl(cache, "del", ids[0])[0], 0)
        self.assertEqual(self.missing(cache, ids), [ids[0]])
        self.assertEqual(self.ctl(cache, "keys", "rotate")[0], 0)
        self.assertEqual(self.ctl(cache, "keys", "show")[0], 0)
        self.assertNotIn("NOPERM", cache.output())
        # What an attacker holding the service's password tries.
        master = self.redis_ports[0]

        def as_service(port, *args):
            return self.cli(port, *args, user="tlscache", password=SERVICE_PASSWORD)

        self.assertEqual(as_service(master, "PING"), "PONG")
        for command in (["CONFIG", "GET", "*"], ["FLUSHALL"], ["KEYS", "*"], ["ACL", "LIST"],
                        ["GET", "other:key"], ["SCAN", "0"], ["DEBUG", "SLEEP", "0"],
                        ["REPLICAOF", "NO", "ONE"], ["MONITOR"], ["SHUTDOWN"],
                        ["EVAL", "return redis.call('FLUSHALL')", "0"],
                        ["EVAL", "return redis.call('GET', 'other:key')", "0"]):
            # DEBUG is refused before the ACL is asked ("not allowed"), a script's call as it
            # runs ("can't run", "can't access"): each way, refused.
            self.assertRegex(as_service(master, *command),
                             "NOPERM|not allowed|can't run|can't access", command)
        sentinel = self.sentinel_ports[0]
        self.assertEqual(as_service(sentinel, "SENTINEL", "get-master-addr-by-name", "tlscache"),
                         f"127.0.0.1\n{master}")
        for command in (["SENTINEL", "FAILOVER", "tlscache"], ["SENTINEL", "REMOVE", "tlscache"],
                        ["SENTINEL", "SET", "tlscache", "quorum", "1"], ["ACL", "LIST"]):
            self.assertIn("NOPERM", as_service(sentinel, *command), command)
        # No password, or the old shared one on the default user, gets nothing.
        self.assertIn("NOAUTH", self.cli(master, "GET", "x", password=""))
        self.assertIn("NOAUTH", self.cli(master, "GET", "x", user="default",
                                         password=SERVICE_PASSWORD))
        # The configurations on the volumes hold hashes, not the service's password.
        for name in ("redis-0", "sentinel-0"):
            with open(os.path.join(self.dir, name, name.split("-")[0] + ".conf")) as f:
                self.assertNotIn(SERVICE_PASSWORD, f.read())

    def sync_everywhere(self):
        for name in [f"redis-{i}" for i in range(3)] + [f"sentinel-{i}" for i in range(3)]:
            code, output = self.run_script("redis-auth-sync.sh", name, name.split("-")[0],
                                           "--once")
            self.assertEqual(code, 0, output)
            self.assertIn("applied the passwords", output)

    def test_passwords_rotate_without_an_outage(self):
        self.start_deployment()
        cache = self.service()
        self.await_ready(cache)
        session = os.path.join(self.dir, "session.bin")
        with open(session, "wb") as f:
            f.write(b"session-bytes")
        failures, calls, stop = [], [0], threading.Event()
        # Held by the traffic for each call, and by the test while it cuts connections to
        # force reconnects (a call in flight on a cut connection fails for the cut, not for
        # the passwords): every call before and after each step counts.
        quiet = threading.Lock()

        def traffic():
            while not stop.is_set():
                with quiet:
                    session_id = f"{calls[0] % 4096:04x}"
                    calls[0] += 1
                    for args in (("put", session_id, session, "--ttl=1h"),
                                 ("get", session_id)):
                        code, output = self.ctl(cache, *args)
                        if code != 0:
                            failures.append(output.strip())
                time.sleep(0.05)

        worker = threading.Thread(target=traffic)
        worker.start()
        self.addCleanup(worker.join)
        self.addCleanup(stop.set)

        def reconnect_everything():
            # New connections everywhere, so each step is used, not only configured: the
            # server's, the replicas' to the master and the sentinels'.
            with quiet:
                for port in self.redis_ports:
                    self.cli(port, "CLIENT", "KILL", "USER", "tlscache")
                    self.cli(port, "CLIENT", "KILL", "TYPE", "master")
                for port in self.sentinel_ports:
                    self.cli(port, "CLIENT", "KILL", "USER", "tlscache")
                time.sleep(2)  # the server's idle checks (every second) reconnect

        # The service's password, the file first (as a Secret reaches the servers before the
        # sidecars): the server falls back to the one Redis still accepts.
        self.set_secret("service-previous", f"tlscache {SERVICE_PASSWORD}")
        self.set_secret("service", "tlscache new-service-password")
        reconnect_everything()
        self.sync_everywhere()
        reconnect_everything()
        self.set_secret("service-previous", None)
        self.sync_everywhere()
        reconnect_everything()
        # The admin password, in three steps: the new one accepted everywhere, then used,
        # then the old one dropped.
        self.set_secret("password-previous", "new-admin-password")
        self.sync_everywhere()
        self.set_secret("password", "new-admin-password")
        self.set_secret("password-previous", PASSWORD)
        self.sync_everywhere()
        reconnect_everything()
        self.set_secret("password-previous", None)
        self.sync_everywhere()
        reconnect_everything()
        stop.set()
        worker.join()
        print(f"\n  figure: both passwords rotated under traffic: {2 * calls[0]} calls, "
              f"{len(failures)} failed (traffic held while the test cut connections)",
              flush=True)
        self.assertEqual(failures, [])
        self.assertGreater(calls[0], 20)
        # The old passwords are refused; the new ones work, replication and sentinels too.
        # (redis-cli goes on unauthenticated after a refused AUTH: NOAUTH.)
        self.assertIn("NOAUTH", self.cli(self.redis_ports[0], "PING", user="tlscache",
                                         password=SERVICE_PASSWORD))
        self.assertIn("NOAUTH", self.cli(self.redis_ports[0], "PING", user="default",
                                         password=PASSWORD))
        self.assertEqual(self.cli(self.redis_ports[0], "PING", user="tlscache",
                                  password="new-service-password"), "PONG")
        for port in self.redis_ports[1:]:
            self.assertIn("master_link_status:up",
                          self.cli(port, "INFO", "replication", password="new-admin-password"))
        self.assertIn("OK 3 usable Sentinels",
                      self.cli(self.sentinel_ports[0], "SENTINEL", "CKQUORUM", "tlscache",
                               password="new-admin-password"))
        # The server kept working after its connections were cut with only the new password.
        self.assertEqual(self.missing(cache, ["0000"]), [])


if __name__ == "__main__":
    unittest.main()
