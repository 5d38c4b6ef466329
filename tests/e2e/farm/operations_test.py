"""Operating a cache server: Prometheus metrics scraped before and after a known number of
calls (made with tlscachectl, the operator's CLI), parsed by the Prometheus client library's
own text-format parser; /healthz and /readyz; tlscachectl's commands and error cases; and
tlscache-server --dry_run."""

import calendar
import os
import subprocess
import time
import unittest

import tlsfarm
from tlsfarm.testcase import FarmTestCase

from tlsfarm import http_get, scrape, value

SEAL_KEY = "5c0ffee5" * 8


class OperationsTest(FarmTestCase):
    def ctl(self, cache, *args, check=None):
        """Runs tlscachectl against `cache`; returns (exit code, stdout + stderr)."""
        result = subprocess.run([tlsfarm.built("tlscachectl"), f"--addr={cache.addr}",
                                 "--namespace=ops", "--timeout=3s", *args],
                                capture_output=True, text=True, timeout=30)
        output = result.stdout + result.stderr
        if check is not None:
            self.assertEqual(result.returncode, check, output)
        return result.returncode, output

    def metrics_cache(self):
        redis = self.farm.redis()
        port = tlsfarm.free_port()
        seal = os.path.join(self.farm.dir, "seal.keys")
        with open(seal, "w") as f:
            f.write(SEAL_KEY + "\n")
        os.chmod(seal, 0o600)
        cache = self.farm.cache(store=f"redis://127.0.0.1:{redis.port}",
                                extra=[f"--metrics_listen=127.0.0.1:{port}",
                                       f"--seal_key_file={seal}"])
        cache.metrics_port = port
        return cache

    def test_metrics_move_by_exactly_the_calls_made(self):
        cache = self.metrics_cache()
        session = os.path.join(self.farm.dir, "session.bin")
        with open(session, "wb") as f:
            f.write(b"\x30\x82" + os.urandom(300))
        before = scrape(cache.metrics_port)
        for i in range(3):
            self.ctl(cache, "put", f"0{i}aa", session, "--ttl=60s", check=0)
        for i in range(2):
            self.ctl(cache, "get", f"0{i}aa", check=0)
        self.ctl(cache, "get", "ffff", check=1)  # a miss
        self.ctl(cache, "del", "00aa", check=0)
        after = scrape(cache.metrics_port)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        method = "/tlscache.v1.SessionCache/"
        self.assertEqual(delta("tlscache_requests_total", method=method + "Put", code="OK"), 3)
        self.assertEqual(delta("tlscache_requests_total", method=method + "Get", code="OK"), 2)
        self.assertEqual(delta("tlscache_requests_total", method=method + "Get",
                               code="NOT_FOUND"), 1)
        self.assertEqual(delta("tlscache_requests_total", method=method + "Delete", code="OK"), 1)
        self.assertEqual(delta("tlscache_cache_hits_total"), 2)
        self.assertEqual(delta("tlscache_cache_misses_total"), 1)
        self.assertEqual(delta("tlscache_request_duration_seconds_count",
                               method=method + "Get"), 3)
        self.assertEqual(delta("tlscache_store_duration_seconds_count", op="put"), 3)
        self.assertEqual(delta("tlscache_store_duration_seconds_count", op="get"), 3)
        self.assertEqual(delta("tlscache_store_duration_seconds_count", op="delete"), 1)
        self.assertGreaterEqual(value(after, "tlscache_redis_connects_total"), 1)
        self.assertEqual(value(after, "tlscache_sealed_open_failures_total"), 0)
        self.assertEqual(value(after, "tlscache_serving"), 1)
        self.report(f"{len(after)} samples parsed by prometheus_client")

    def test_the_stores_view_of_redis_and_the_certificates_expiry_are_metrics(self):
        # Redis as the store sees it (standalone: no replica, so none is good).
        cache = self.metrics_cache()
        samples = scrape(cache.metrics_port)
        for name in ("tlscache_redis_master_replicas", "tlscache_redis_master_good_replicas",
                     "tlscache_redis_aof_ok", "tlscache_redis_evicted_keys_total"):
            self.assertIn((name, frozenset()), samples)
        self.assertEqual(value(samples, "tlscache_redis_master_replicas"), 0)
        self.assertEqual(value(samples, "tlscache_redis_master_good_replicas"), 0)
        self.assertEqual(value(samples, "tlscache_redis_aof_ok"), 1)
        self.assertEqual(value(samples, "tlscache_redis_evicted_keys_total"), 0)
        self.assertGreater(value(samples, "tlscache_redis_memory_used_bytes"), 0)
        self.assertNotIn(("tlscache_redis_sentinels", frozenset()), samples)
        # The certificate and the client CA's expiry, as openssl reads them; a certificate
        # renewed in place shows at the next scrape.
        cert, key, ca = self.farm.issue("ops-server", "DNS:localhost", server=True)
        port = tlsfarm.free_port()
        self.farm.cache(extra=[f"--tls_cert={cert}", f"--tls_key={key}", f"--tls_client_ca={ca}",
                               f"--metrics_listen=127.0.0.1:{port}"])

        def not_after(path):
            out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-enddate",
                                  "-dateopt", "iso_8601"], capture_output=True, text=True,
                                 check=True).stdout
            return calendar.timegm(time.strptime(out.strip().split("=", 1)[1],
                                                 "%Y-%m-%d %H:%M:%SZ"))

        samples = scrape(port)
        name = "tlscache_tls_certificate_expiry_timestamp_seconds"
        self.assertEqual(value(samples, name, file="cert"), not_after(cert))
        self.assertEqual(value(samples, name, file="client_ca"), not_after(ca))
        subprocess.run(["openssl", "req", "-x509", "-key", key, "-out", cert + ".new", "-days",
                        "30", "-subj", "/CN=localhost"], check=True, capture_output=True)
        os.replace(cert + ".new", cert)
        self.assertEqual(value(scrape(port), name, file="cert"), not_after(cert))
        self.assertGreater(not_after(cert) - time.time(), 29 * 86400)

    def test_ticket_ring_metrics_follow_a_rotation(self):
        cache = self.metrics_cache()
        self.ctl(cache, "keys", "show", check=0)
        self.ctl(cache, "keys", "rotate", check=0)
        samples = scrape(cache.metrics_port)
        self.assertEqual(value(samples, "tlscache_ticket_ring_version", namespace="ops"), 2)
        self.assertLess(value(samples, "tlscache_ticket_key_age_seconds", namespace="ops"), 60)

    def test_healthz_and_readyz_follow_the_store(self):
        port = tlsfarm.free_port()
        # Redis is not there: the process is alive, the service is not ready.
        self.farm.cache(store=f"redis://127.0.0.1:{tlsfarm.free_port()}",
                        extra=[f"--metrics_listen=127.0.0.1:{port}"])
        self.assertEqual(http_get(port, "/healthz")[0], 200)
        self.assertEqual(http_get(port, "/readyz"), (503, "NOT_SERVING\n"))
        self.assertEqual(value(scrape(port), "tlscache_serving"), 0)
        self.assertEqual(http_get(port, "/nothing")[0], 404)

    def test_tlscachectl_commands_and_their_errors(self):
        cache = self.metrics_cache()
        session = os.path.join(self.farm.dir, "session.bin")
        with open(session, "wb") as f:
            f.write(b"secret-session-bytes")
        _, out = self.ctl(cache, "put", "abcd", session, check=0)
        self.assertIn("stored abcd (20 bytes) in namespace ops", out)
        copy = os.path.join(self.farm.dir, "copy.bin")
        _, out = self.ctl(cache, "get", "abcd", f"--out={copy}", check=0)
        self.assertRegex(out, r"abcd: 20 bytes, \d+ seconds left")
        self.assertNotIn("secret-session-bytes", out)
        with open(copy, "rb") as f:
            self.assertEqual(f.read(), b"secret-session-bytes")
        self.assertEqual(os.stat(copy).st_mode & 0o777, 0o600)
        _, out = self.ctl(cache, "stats", check=0)
        self.assertIn("sealed (1 key)", out)
        self.assertIn("1 hits, 0 misses", out)
        self.assertIn("/tlscache.v1.SessionCache/Put", out)
        _, out = self.ctl(cache, "del", "abcd", check=0)
        self.assertIn("abcd deleted", out)
        _, out = self.ctl(cache, "del", "abcd", check=0)
        self.assertIn("abcd was not cached", out)

        errors = [
            (("get", "abcd"), 1, "abcd is not cached in namespace ops"),
            (("get", "xyz"), 2, "'xyz' is not a hex session ID"),
            (("get", "ab" * 33), 2, "session_id is 33 bytes long"),
            (("put", "abcd", "/nonexistent"), 2, "/nonexistent"),
            (("put", "abcd"), 2, "put: expected HEXID FILE"),
            (("frobnicate",), 2, "unknown command 'frobnicate'"),
            ((), 2, "no command"),
            (("--namespace=bad/ns", "stats"), 0, ""),  # stats is not namespaced
            (("--namespace=bad/ns", "get", "ab"), 2, "namespace may only contain"),
        ]
        for args, code, says in errors:
            got, out = self.ctl(cache, *args)
            self.assertEqual(got, code, (args, out))
            self.assertIn(says, out, args)
        down = subprocess.run([tlsfarm.built("tlscachectl"),
                               f"--addr=127.0.0.1:{tlsfarm.free_port()}", "--timeout=1s",
                               "stats"], capture_output=True, text=True, timeout=30)
        self.assertEqual(down.returncode, 1)
        self.assertIn("stats at 127.0.0.1:", down.stderr)
        self.assertIn("UNAVAILABLE", down.stderr)
        help_text = subprocess.run([tlsfarm.built("tlscachectl"), "--help"],
                                   capture_output=True, text=True).stdout
        for command in ("stats", "get HEXID", "put HEXID FILE", "del HEXID", "keys show",
                        "keys rotate", "--ca_file", "--cert_file", "--key_file"):
            self.assertIn(command, help_text)

    def test_dry_run_checks_flags_and_files_and_starts_nothing(self):
        server = tlsfarm.built("tlscache-server")
        ok = subprocess.run([server, "--dry_run", f"--listen=127.0.0.1:{tlsfarm.free_port()}"],
                            capture_output=True, text=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn("configuration OK", ok.stdout)
        for flags, says in [
            (["--seal_key_file=/nonexistent"], "/nonexistent"),
            (["--tls_cert=/etc/hostname", "--tls_key=/etc/hostname"], "no PEM certificate"),
            (["--store=redis://:1"], "no host"),
            (["--listen=0.0.0.0:7700"], "not a loopback address"),
        ]:
            bad = subprocess.run([server, "--dry_run", *flags], capture_output=True, text=True,
                                 timeout=30)
            self.assertNotEqual(bad.returncode, 0, flags)
            self.assertIn(says, bad.stderr, flags)


if __name__ == "__main__":
    unittest.main()
