"""The prod overlay's Redis with Sentinel, run as its pods run it: real redis-server and
redis-sentinel processes on loopback, configured by the deploy's own init scripts
(redis-init.sh, sentinel-init.sh, find-master.sh) from its own redis.conf and sentinel
files, with a password. A pod's address is 127.0.0.1 and its port; SELF_HOST, SENTINELS,
BOOTSTRAP_MASTER and the directories stand for the names a StatefulSet gives."""

import os
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
import unittest

from tlsfarm import free_port, require

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROD = os.path.join(ROOT, "deploy", "k8s", "overlays", "prod")
PASSWORD = "test-redis-password"


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


class RedisSentinelTest(unittest.TestCase):
    def setUp(self):
        self.redis_server = require("redis-server")
        self.redis_cli = require("redis-cli")
        self.dir = tempfile.mkdtemp(prefix="tlscache-redis-")
        self.password_file = os.path.join(self.dir, "password")
        with open(self.password_file, "w") as f:
            f.write(PASSWORD)
        self.processes = {}
        self.sentinel_ports = [free_port() for _ in range(3)]

    def tearDown(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def environment(self, data_dir, **values):
        env = {"PATH": os.environ["PATH"], "CONFIG_DIR": PROD, "DATA_DIR": data_dir,
               "SELF_HOST": "127.0.0.1", "PASSWORD_FILE": self.password_file,
               "SENTINELS": " ".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)}
        env.update(values)
        return env

    def init(self, script, name, **values):
        """Runs the deploy's init script for pod `name`; returns (exit code, output)."""
        data_dir = os.path.join(self.dir, name)
        os.makedirs(data_dir, exist_ok=True)
        result = subprocess.run(["sh", os.path.join(PROD, script)], capture_output=True,
                                text=True, timeout=60, env=self.environment(data_dir, **values))
        return result.returncode, result.stdout + result.stderr

    def start_redis(self, name, port, bootstrap):
        code, output = self.init("redis-init.sh", name, REDIS_PORT=str(port),
                                 BOOTSTRAP_MASTER=f"127.0.0.1:{bootstrap}")
        self.assertEqual(code, 0, output)
        config = os.path.join(self.dir, name, "redis.conf")
        self.processes[name] = subprocess.Popen(
            [self.redis_server, config, "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd=os.path.join(self.dir, name))
        self.await_answer(port, "PING", "PONG")
        return config

    def start_sentinel(self, index, bootstrap):
        name = f"sentinel-{index}"
        port = self.sentinel_ports[index]
        code, output = self.init("sentinel-init.sh", name, SENTINEL_PORT=str(port),
                                 BOOTSTRAP_MASTER=f"127.0.0.1:{bootstrap}")
        self.assertEqual(code, 0, output)
        self.processes[name] = subprocess.Popen(
            [self.redis_server, os.path.join(self.dir, name, "sentinel.conf"), "--sentinel",
             "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.await_answer(port, "PING", "PONG")

    def cli(self, port, *args):
        return subprocess.run([self.redis_cli, "-p", str(port), "--no-auth-warning", "-a",
                               PASSWORD, "--raw", *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()

    def await_answer(self, port, command, expected, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            answer = self.cli(port, *command.split())
            if expected in answer:
                return answer
            self.assertLess(time.monotonic(), deadline, f"{command} on {port}: {answer!r}")
            time.sleep(0.05)

    def start_deployment(self):
        """redis-0 (the master) and redis-1 started in a new deployment, as the StatefulSets
        start them, and the three sentinels; returns the two pods' ports."""
        master, replica = free_port(), free_port()
        self.start_redis("redis-0", master, bootstrap=master)
        self.start_redis("redis-1", replica, bootstrap=master)
        for index in range(3):
            self.start_sentinel(index, bootstrap=master)
        return master, replica

    def test_a_master_killed_and_restarted_at_once_keeps_what_was_written(self):
        master, replica = self.start_deployment()
        # The way tlscache writes: sessions with a TTL, a ring without one.
        script = "for i=1,1000 do redis.call('SET', 'default:s' .. i, 'x', 'EX', 3600) end"
        self.cli(master, "EVAL", script, "0")
        self.cli(master, "SET", "@ring:default", "keys")
        self.assertEqual(self.cli(master, "DBSIZE"), "1001")
        self.await_answer(replica, "DBSIZE", "1001")
        self.processes["redis-0"].kill()  # as the OOM killer does
        self.processes["redis-0"].wait()
        # Restarted at once: the sentinels (down-after-milliseconds 5000) still name it.
        self.start_redis("redis-0", master, bootstrap=master)
        self.await_answer(master, "INFO replication", "role:master")
        self.assertEqual(self.cli(master, "DBSIZE"), "1001")
        self.assertEqual(self.cli(master, "GET", "@ring:default"), "keys")
        # The replica syncs again from it and keeps every entry.
        self.await_answer(replica, "INFO replication", "master_link_status:up")
        time.sleep(0.5)
        self.assertEqual(self.cli(replica, "DBSIZE"), "1001")
        # And both ask for the password.
        result = subprocess.run([self.redis_cli, "-p", str(master), "DBSIZE"],
                                capture_output=True, text=True, timeout=10)
        self.assertIn("NOAUTH", result.stdout + result.stderr)

    def test_a_master_stopping_hands_its_role_to_a_replica_first(self):
        master, replica = self.start_deployment()
        self.cli(master, "SET", "@ring:default", "keys")
        self.await_answer(replica, "INFO replication", "master_link_status:up")
        # As in a running deployment: every sentinel knows the replica.
        for port in self.sentinel_ports:
            self.await_answer(port, "SENTINEL replicas tlscache", str(replica))
        # A replica's preStop returns at once.
        result = subprocess.run(
            ["sh", os.path.join(PROD, "redis-prestop.sh")], capture_output=True, text=True,
            timeout=10, env=self.environment(os.path.join(self.dir, "redis-1"),
                                             REDIS_PORT=str(replica)))
        self.assertEqual((result.returncode, result.stdout), (0, ""))
        started = time.monotonic()
        result = subprocess.run(
            ["sh", os.path.join(PROD, "redis-prestop.sh")], capture_output=True, text=True,
            timeout=60, env=self.environment(os.path.join(self.dir, "redis-0"),
                                             REDIS_PORT=str(master)))
        seconds = time.monotonic() - started
        print(f"\n  figure: the master's preStop handed over in {seconds:.1f} s: "
              f"{result.stdout.strip()!r}", flush=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"the master is now 127.0.0.1 {replica}", result.stdout,
                      result.stdout + result.stderr)
        self.assertIn("role:master", self.cli(replica, "INFO", "replication"))
        self.assertEqual(self.cli(replica, "GET", "@ring:default"), "keys")
        for port in self.sentinel_ports:
            self.assertEqual(self.cli(port, "SENTINEL", "get-master-addr-by-name", "tlscache"),
                             f"127.0.0.1\n{replica}")

    def test_a_restarted_pod_finds_the_master_with_one_sentinel_down_or_lying(self):
        # As after a failover: redis-1 is the master, redis-0 comes back and must follow it.
        old, current = free_port(), free_port()
        self.start_redis("redis-1", current, bootstrap=current)
        for index in range(3):
            self.start_sentinel(index, bootstrap=current)

        def follows(**values):
            code, output = self.init("redis-init.sh", "redis-0", REDIS_PORT=str(old),
                                     BOOTSTRAP_MASTER=f"127.0.0.1:{old}", **values)
            with open(os.path.join(self.dir, "redis-0", "redis.conf")) as f:
                replicaof = [line for line in f.read().splitlines()
                             if line.startswith("replicaof ")]
            return code, output, replicaof

        code, output, replicaof = follows()
        self.assertEqual((code, replicaof), (0, [f"replicaof 127.0.0.1 {current}"]), output)

        self.processes["sentinel-2"].kill()
        self.processes["sentinel-2"].wait()
        code, output, replicaof = follows()
        self.assertEqual((code, replicaof), (0, [f"replicaof 127.0.0.1 {current}"]), output)

        # A sentinel that names the restarted pod itself would make it a second master.
        liar = LyingSentinel(self.sentinel_ports[2], f"127.0.0.1 {old}")
        self.addCleanup(liar.server_close)
        self.addCleanup(liar.shutdown)
        code, output, replicaof = follows()
        self.assertEqual((code, replicaof), (0, [f"replicaof 127.0.0.1 {current}"]), output)

        # The config it wrote works: redis-0 replicates the current master.
        config = os.path.join(self.dir, "redis-0", "redis.conf")
        self.processes["redis-0"] = subprocess.Popen(
            [self.redis_server, config, "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd=os.path.join(self.dir, "redis-0"))
        self.await_answer(old, "INFO replication", "master_link_status:up")
        self.assertIn(f"master_port:{current}", self.cli(old, "INFO", "replication"))
        self.processes["redis-0"].kill()

        # With one down and one lying no two agree: the pod fails and asks again later,
        # rather than guess.
        self.processes["sentinel-1"].kill()
        self.processes["sentinel-1"].wait()
        code, output, _ = follows()
        self.assertNotEqual(code, 0)
        self.assertIn("do not agree", output)


if __name__ == "__main__":
    unittest.main()
