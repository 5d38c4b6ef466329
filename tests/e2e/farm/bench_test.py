"""tlscache-bench, each mode for 2 seconds against real servers: it runs, prints one JSON
object, and its counts agree with themselves and with what the servers counted (the cache
service's Prometheus metrics for rpc mode)."""

import json
import subprocess
import unittest

import tlsfarm
from tlsfarm.testcase import FarmTestCase
from tlsfarm import scrape, value

SMOKE = "--duration=2s"
GET = "/tlscache.v1.SessionCache/Get"
PUT = "/tlscache.v1.SessionCache/Put"


def bench(*args):
    """(exit code, parsed JSON or None, stderr) of tlscache-bench --json ARGS."""
    result = subprocess.run([tlsfarm.built("tlscache-bench"), *args, "--json"],
                            capture_output=True, text=True, timeout=60)
    try:
        parsed = json.loads(result.stdout)
    except ValueError:
        parsed = None
    return result.returncode, parsed, result.stderr


class BenchSmokeTest(FarmTestCase):
    def run_ok(self, *args):
        code, result, stderr = bench(*args)
        self.assertEqual(code, 0, stderr)
        self.assertIsNotNone(result, stderr)
        return result, stderr

    def test_rpc_counts_agree_with_the_service(self):
        port = tlsfarm.free_port()
        cache = self.farm.cache(extra=[f"--metrics_listen=127.0.0.1:{port}"])
        result, stderr = self.run_ok("rpc", f"--addr={cache.addr}", SMOKE, "--concurrency=8",
                                     "--mix=3:1", "--keys=500", "--value_size=256")
        self.assertIn("calls/s", stderr)  # the progress line
        self.assertEqual(result["prefilled"], 500)
        self.assertGreater(result["gets"], 0)
        self.assertGreater(result["puts"], 0)
        self.assertEqual(result["calls"], result["gets"] + result["puts"])
        # Every key was stored first, and the memory store keeps them: every Get is a hit with
        # the value its key was stored with.
        self.assertEqual(result["hits"], result["gets"])
        self.assertEqual((result["misses"], result["errors"], result["wrong"]), (0, 0, 0))
        self.assertEqual(result["latency"]["count"], result["calls"])
        rate = result["calls"] / result["seconds"]
        self.assertAlmostEqual(result["calls_per_second"], rate, delta=rate / 1000)
        self.assertLessEqual(result["latency"]["p50_us"], result["latency"]["p99_us"])
        samples = scrape(port)
        self.assertEqual(value(samples, "tlscache_requests_total", method=GET, code="OK"),
                         result["gets"])
        self.assertEqual(value(samples, "tlscache_requests_total", method=PUT, code="OK"),
                         result["prefilled"] + result["puts"])

    def test_stream_stores_reach_every_follower_and_the_service_counts_them(self):
        port = tlsfarm.free_port()
        cache = self.farm.cache(extra=[f"--metrics_listen=127.0.0.1:{port}"])
        result, _ = self.run_ok("stream", f"--addr={cache.addr}", SMOKE, "--concurrency=4",
                                "--followers=2", "--rate=500", "--value_size=256")
        # 500/s for 2 s, each store acknowledged, each pushed to both followers.
        self.assertIn(result["puts"], (999, 1000))
        self.assertEqual(result["acknowledged"], result["puts"])
        self.assertEqual(result["complete"], 1)
        self.assertEqual(result["received"], 2 * result["acknowledged"])
        self.assertEqual(result["gaps"], 0)
        self.assertEqual(result["put_latency"]["count"], result["puts"])
        self.assertLessEqual(result["lag_p50_us"], result["lag_p99_us"])
        self.assertGreater(result["near_bytes"], result["near_entries"] * 256)
        samples = scrape(port)
        self.assertEqual(value(samples, "tlscache_feed_changes_total", source="log"),
                         result["puts"])
        # The load's writer and two followers left with it: no follower stays behind.
        self.assertEqual(value(samples, "tlscache_feed_followers", namespace="bench"), 0)

    def test_rpc_paced_calls_keep_their_rate(self):
        cache = self.farm.cache()
        result, _ = self.run_ok("rpc", f"--addr={cache.addr}", SMOKE, "--concurrency=8",
                                "--rate=500", "--keys=100")
        # 500/s for 2 s: 1,000 calls were due, the last just before the end.
        self.assertIn(result["calls"], (999, 1000))
        self.assertEqual(result["errors"], 0)

    def test_rpc_against_nothing_fails_with_a_message(self):
        code, result, stderr = bench("rpc", f"--addr=127.0.0.1:{tlsfarm.free_port()}", SMOKE)
        self.assertEqual(code, 1)
        self.assertIsNone(result)
        self.assertIn("cannot connect to 127.0.0.1:", stderr)

    def test_tls_counts_handshakes_and_resumptions(self):
        cache = self.farm.cache()
        port = tlsfarm.free_port()
        self.farm.node("127.0.0.1", port, tlscache=f"addr={cache.addr}")
        for version in ("1.2", "1.3"):
            with self.subTest(version=version):
                result, stderr = self.run_ok("tls", f"--target=127.0.0.1:{port}", SMOKE,
                                             f"--tls={version}", "--concurrency=4")
                self.assertIn("handshakes/s", stderr)
                self.assertEqual(result["tls"], version)
                self.assertEqual(result["failures"], 0)
                # Each client's first connection has nothing to offer; every later one offers
                # its newest session, and one node resumes all of them.
                self.assertEqual(result["offered"], result["handshakes"] - 4)
                self.assertEqual(result["resumed"], result["offered"])
                self.assertEqual(result["resumption_pct"], 100.0)
                self.assertEqual(result["latency"]["count"], result["handshakes"])
                self.assertEqual(result["resumed_latency"]["count"], result["resumed"])
                self.assertEqual(result["full_latency"]["count"], 4)

    def test_tls_chains_tell_a_nodes_own_sessions_from_another_nodes(self):
        # Four nodes in turn: the first and third share sessions through the cache (their own
        # caches off, so that each resumption there is of the other's session), the second
        # and fourth keep theirs. Every resumption on the pair is counted "elsewhere", every
        # one on the other two "here".
        cache = self.farm.cache()
        ips = tlsfarm.NODE_IPS + ["127.0.0.14"]
        port = tlsfarm.free_port(ips)
        for i, ip in enumerate(ips):
            if i % 2 == 0:
                self.farm.node(ip, port, tlscache=f"addr={cache.addr}", name=f"shared{i}",
                               extra=["--internal_cache=false"])
            else:
                self.farm.node(ip, port, name=f"own{i}")
        result, _ = self.run_ok("tls", "--target=" + ",".join(f"{ip}:{port}" for ip in ips),
                                "--chains=0,1,0,3", SMOKE, "--tls=1.2", "--concurrency=1")
        self.assertEqual(result["failures"], 0)
        self.assertEqual(result["resumed"], result["offered"])
        self.assertEqual(result["resumed_here"] + result["resumed_elsewhere"], result["resumed"])
        self.assertGreater(result["resumed_elsewhere"], 0)
        # One client going round four nodes: as many turns on the pair as on the other two.
        self.assertLessEqual(abs(result["resumed_here"] - result["resumed_elsewhere"]), 2)
        self.assertEqual(result["resumed_here_latency"]["count"], result["resumed_here"])
        self.assertEqual(result["resumed_elsewhere_latency"]["count"],
                         result["resumed_elsewhere"])

    def test_tls_without_resumption_makes_full_handshakes(self):
        port = tlsfarm.free_port()
        self.farm.node("127.0.0.1", port)
        result, _ = self.run_ok("tls", f"--target=127.0.0.1:{port}", SMOKE, "--resume=none",
                                "--concurrency=2")
        self.assertGreater(result["handshakes"], 0)
        self.assertEqual((result["offered"], result["resumed"]), (0, 0))

    def test_tls_counts_failures(self):
        code, result, _ = bench("tls", f"--target=127.0.0.1:{tlsfarm.free_port()}",
                                "--duration=1s", "--concurrency=1", "--progress=false")
        self.assertEqual(code, 1)
        self.assertEqual(result["handshakes"], 0)
        self.assertGreater(result["failures"], 0)
        self.assertIn("connect", result["first_error"])

    def test_bad_flags_are_named(self):
        for args, message in ((["tls", "--target=127.0.0.1:1", "--tls=1.1"], "--tls=1.1"),
                              (["tls", "--target=nowhere"], "--target=nowhere"),
                              (["tls", "--target=127.0.0.1:1", "--chains=0,1"],
                               "2 chains for 1 targets"),
                              (["tls", "--target=127.0.0.1:1", "--chains=x"], "--chains: x"),
                              (["rpc", "--mix=most"], "--mix=most"),
                              (["rpc", "--concurrency=0"], "concurrency 0"),
                              (["udp"], "unknown mode udp")):
            with self.subTest(args=args):
                code, _, stderr = bench(*args)
                self.assertNotEqual(code, 0)
                self.assertIn(message, stderr)


if __name__ == "__main__":
    unittest.main()
