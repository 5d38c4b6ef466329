"""The farm with the cache secured: mTLS between the nodes and the cache, namespaces per
identity, and sessions sealed before they reach Redis, checked against the master secrets a
real client logged (Python's ssl keylog_filename)."""

import os
import ssl
import time
import unittest

import tlsfarm
from tlsfarm.testcase import RECONNECTS, FarmTestCase

SEAL_KEY = "3f8a1c0e5b7d9f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a"


class SecureFarm(FarmTestCase):
    def secure_cache(self, store, authz, seal=False):
        """tlscache-server with TLS, a client CA and `authz` as its authorization file."""
        cert, key, ca = self.farm.issue("cache", "DNS:localhost,IP:127.0.0.1", server=True)
        authz_file = os.path.join(self.farm.dir, "authz")
        with open(authz_file, "w") as f:
            f.write(authz)
        extra = [f"--tls_cert={cert}", f"--tls_key={key}", f"--tls_client_ca={ca}",
                 f"--authz_file={authz_file}"]
        if seal:
            extra.append(f"--seal_key_file={self.seal_key_file()}")
        return self.farm.cache(store=store, extra=extra)

    def seal_key_file(self):
        path = os.path.join(self.farm.dir, "seal.keys")
        with open(path, "w") as f:
            f.write(SEAL_KEY + "\n")
        os.chmod(path, 0o600)
        return path

    def node_config(self, cache, identity, namespace):
        cert, key, ca = self.farm.issue(identity.rsplit("/", 1)[-1], f"URI:{identity}")
        return (f"addr={cache.addr};namespace={namespace};sid_ctx=farm-test;"
                f"ca_file={ca};cert_file={cert};key_file={key}")


class MtlsFarmTest(SecureFarm):
    def mtls_farm(self):
        redis = self.farm.redis()
        cache = self.secure_cache(f"redis://127.0.0.1:{redis.port}",
                                  "spiffe://farm/frontend shop\n", seal=True)
        lb = self.farm.haproxy(self.farm.nodes(
            tlscache=self.node_config(cache, "spiffe://farm/frontend", "shop")))
        return cache, lb

    def test_a_farm_on_mtls_resumes_every_session(self):
        cache, lb = self.mtls_farm()
        self.assert_every_reconnect_resumes(lb, "mTLS to a sealed cache")
        self.assertIn("(mTLS, authorization by --authz_file)", cache.output())

    def test_a_thousand_immediate_reconnects_resume_over_mtls_to_a_sealed_cache(self):
        _, lb = self.mtls_farm()
        self.assert_immediate_reconnects_resume(lb)

    def test_a_node_the_cache_refuses_still_completes_every_handshake(self):
        cache = self.secure_cache("memory", "spiffe://farm/frontend shop\n")
        # Allowed another namespace only: every call is PERMISSION_DENIED.
        lb = self.farm.haproxy(self.farm.nodes(
            tlscache=self.node_config(cache, "spiffe://farm/frontend", "blog")))
        for name, resumed in self.resumption(lb, "nodes refused by the cache").items():
            # Every handshake completed (a failed one raises), as full handshakes.
            self.assertLessEqual(resumed, RECONNECTS * 0.05, name)
        # Each node says why, once.
        node = next(p for p in self.farm.processes if p.name == "node1")
        self.assertEqual(node.output().count("PERMISSION_DENIED"), 1, node.output())
        self.assertIn("may not use namespace blog", node.output())


class SealingTest(SecureFarm):
    SESSIONS = 40

    def master_secrets_found_in_redis(self, seal):
        """Runs SESSIONS full TLS 1.2 handshakes through a farm on Redis, logging their keys;
        returns (master secrets found in any Redis value, session entries in Redis)."""
        redis = self.farm.redis()
        extra = [f"--seal_key_file={self.seal_key_file()}"] if seal else []
        cache = self.farm.cache(store=f"redis://127.0.0.1:{redis.port}", extra=extra)
        lb = self.farm.haproxy(self.farm.nodes(tlscache=f"addr={cache.addr};sid_ctx=farm-test"))
        keylog = os.path.join(self.farm.dir, "keylog.txt")
        client = tlsfarm.Client(ssl.TLSVersion.TLSv1_2)
        client.context.keylog_filename = keylog
        for _ in range(self.SESSIONS):
            client.session = None  # a full handshake: a new master secret each time
            client.connect("127.0.0.1", lb)
        secrets = set()
        with open(keylog) as f:
            for line in f:
                fields = line.split()
                if len(fields) == 3 and fields[0] == "CLIENT_RANDOM":
                    secrets.add(bytes.fromhex(fields[2]))
        self.assertEqual(len(secrets), self.SESSIONS)
        # Stores are asynchronous: wait until they landed.
        deadline = time.monotonic() + 10
        while True:
            values = tlsfarm.redis_values(redis.port)
            entries = len(values)
            if entries >= self.SESSIONS or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        found = sum(1 for secret in secrets if any(secret in value for value in values))
        self.report(f"{'sealed' if seal else 'unsealed'}: {found} of {len(secrets)} master "
                    f"secrets found in {len(values)} Redis values")
        return found, entries

    def test_without_sealing_redis_reveals_the_master_secrets(self):
        found, _ = self.master_secrets_found_in_redis(seal=False)
        self.assertGreaterEqual(found, self.SESSIONS * 0.9)

    def test_with_sealing_redis_reveals_no_master_secret(self):
        found, entries = self.master_secrets_found_in_redis(seal=True)
        self.assertGreaterEqual(entries, self.SESSIONS)
        self.assertEqual(found, 0)


if __name__ == "__main__":
    unittest.main()
