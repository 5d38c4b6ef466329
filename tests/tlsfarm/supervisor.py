"""Processes of a test: where tlscache's binaries are, the stock servers a test needs (skipped,
saying why, when absent), the preload environment, free ports, and Process, which owns one
process and its log."""

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import unittest


BIN_DIR = os.environ.get("TLSCACHE_BIN_DIR", os.path.join(os.path.dirname(__file__),
                                                         "../../build/bin"))


def require(binary):
    """The path of `binary`, or skip the test (saying why) when it is not installed."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/local/sbin")
    if path is None:
        raise unittest.SkipTest(f"{binary} is not installed")
    return path


def built(name):
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} is not built (run make build)")
    return path


# In the sanitizer build (make test-asan) the preload library needs the ASan runtime loaded
# before it; the stock server itself is not instrumented, so its own leaks are not ours.
ASAN_RUNTIME = os.environ.get("TLSCACHE_ASAN_RUNTIME", "")
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def preload_environment(env):
    """The environment of a stock server: with `env` (TLSCACHE_* variables), loaded with the
    tlscache preload library; with None, as it comes."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if env is not None:
        path = os.path.normpath(os.path.join(BIN_DIR, "..", "lib", "libtlscache_preload.so"))
        if not os.path.exists(path):
            raise AssertionError(f"{path} is not built (run make build)")
        environment["LD_PRELOAD"] = f"{ASAN_RUNTIME} {path}" if ASAN_RUNTIME else path
        if ASAN_RUNTIME:
            environment["ASAN_OPTIONS"] = "detect_leaks=0"
        environment.update(env)
    return environment


def free_port(ips=("127.0.0.1",)):
    """A TCP port free on every address in `ips` a moment ago. Taken below the kernel's
    ephemeral range, where the many short client connections of a test take their source
    ports: a port picked there can be in use again by the time a server binds it."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        try:
            for ip in ips:
                with socket.socket() as s:
                    s.bind((ip, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def wait_for_port(ip, port, timeout=15.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection((ip, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {ip}:{port}")


class Process:
    def __init__(self, farm, name, argv, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(farm.dir, f"{name}.log")
        self.log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        return self.popen.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")
