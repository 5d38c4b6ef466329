"""Farm: the processes of one test (redis-server, tlscache-server, tlscache-tls-server nodes,
stock servers) and a temporary directory for their files. Everything a test starts is
registered with its Farm and stopped (and its logs printed on a failure) when the Farm
closes."""

import os
import shutil
import tempfile
import time

from tlsfarm.pki import issue, self_signed
from tlsfarm.resp import redis_call
from tlsfarm.servers import NODE_IPS, ServerConfigs
from tlsfarm.supervisor import (SANITIZER_REPORTS, Process, built, free_port, require,
                                wait_for_port)


class Farm(ServerConfigs):
    """Owns the processes of one test and a temporary directory for their files."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tlscache-farm-")
        self.processes = []
        self.cert, self.key = self_signed(self.dir)
        self.key_dirs = []  # keysyncs' directories, on tmpfs
        self.keysync_argv = {}

    def close(self, print_logs=False):
        """Stops everything. Raises if any process printed a sanitizer report."""
        reports = []
        for process in reversed(self.processes):
            process.stop()
            output = process.output()
            if any(marker in output for marker in SANITIZER_REPORTS):
                reports.append(process.name)
            if print_logs or reports and reports[-1] == process.name:
                print(f"--- {process.name} ({' '.join(process.argv)})\n{output}")
        shutil.rmtree(self.dir, ignore_errors=True)
        for directory in self.key_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        if reports:
            raise AssertionError(f"sanitizer reports from {', '.join(reports)}")


    def start(self, name, argv, env=None):
        process = Process(self, name, argv, env)
        self.processes.append(process)
        return process


    def redis(self):
        port = free_port()
        process = self.start("redis", [require("redis-server"), "--port", str(port), "--bind",
                                       "127.0.0.1", "--dir", self.dir, "--save", "",
                                       "--appendonly", "no"])
        wait_for_port("127.0.0.1", port, process=process.popen)
        process.port = port
        return process

    def redis_with_sentinels(self):
        """A Redis master, its replica, and three sentinels watching it (master name
        "tlscache", down after 1 s). Returns (master, replica, store URL) once the replica
        has finished its first sync."""
        master = self.redis()
        replica_port = free_port()
        replica = self.start(f"redis-replica-{replica_port}", [
            require("redis-server"), "--port", str(replica_port), "--bind", "127.0.0.1",
            "--dir", self.dir, "--save", "", "--appendonly", "no",
            "--dbfilename", f"replica-{replica_port}.rdb",
            "--replicaof", "127.0.0.1", str(master.port)])
        wait_for_port("127.0.0.1", replica_port, process=replica.popen)
        replica.port = replica_port
        sentinels = []
        for _ in range(3):
            port = free_port()
            conf = os.path.join(self.dir, f"sentinel-{port}.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                        f"sentinel monitor tlscache 127.0.0.1 {master.port} 2\n"
                        "sentinel down-after-milliseconds tlscache 1000\n"
                        "sentinel failover-timeout tlscache 5000\n")
            sentinel = self.start(f"sentinel-{port}", [require("redis-server"), conf,
                                                       "--sentinel"])
            wait_for_port("127.0.0.1", port, process=sentinel.popen)
            sentinels.append(port)
        deadline = time.monotonic() + 20
        while b"state=online" not in redis_call(master.port, b"INFO", b"replication"):
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not sync")
            time.sleep(0.05)
        url = "redis-sentinel://" + ",".join(f"127.0.0.1:{p}" for p in sentinels) + "/tlscache"
        return master, replica, url


    def issue(self, name, subject_alt_name="", server=False, ca_name="ca"):
        """pki.issue in the farm's directory."""
        return issue(self.dir, name, subject_alt_name, server, ca_name)

    def cache(self, store="memory", port=None, extra=(), ip="127.0.0.1"):
        port = port or free_port((ip,))
        name = f"cache-{port}" if ip == "127.0.0.1" else f"cache-{ip}-{port}"
        # A restart on the same port appends to the same log: count only the new lines.
        log = os.path.join(self.dir, f"{name}.log")
        started_before = 0
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                started_before = f.read().count("listening on")
        process = self.start(name, [built("tlscache-server"), f"--listen={ip}:{port}",
                                    f"--store={store}", *extra])
        # The server says it listens once every port it serves (gRPC, health, metrics) is up.
        deadline = time.monotonic() + 15
        while process.output().count("listening on") <= started_before:
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tlscache-server did not start: {process.output()}")
            time.sleep(0.02)
        process.port = port
        process.addr = f"{ip}:{port}"
        return process

    def node(self, ip, port, tlscache=None, name=None, extra=()):
        argv = [built("tlscache-tls-server"), f"--listen={ip}:{port}", f"--cert={self.cert}",
                f"--key={self.key}", f"--name={name or ip}", *extra]
        if tlscache:
            argv.append(f"--tlscache={tlscache}")
        process = self.start(name or ip, argv)
        wait_for_port(ip, port, process=process.popen)
        return process


    def on_every_node(self, start):
        """Calls start(ip, port, name) for node1-3 on 127.0.0.11-13, one port (as a real
        farm). Returns (port, what each call returned)."""
        port = free_port(NODE_IPS)
        return port, [start(ip, port, f"node{i + 1}") for i, ip in enumerate(NODE_IPS)]

    def nodes(self, tlscache=None, extra=()):
        """Three tlscache-tls-server nodes (see on_every_node). Returns the port."""
        port, _ = self.on_every_node(
            lambda ip, port, name: self.node(ip, port, tlscache, name=name, extra=extra))
        return port
