"""make demo: a 3-node farm of stock nginx with the tlscache preload behind HAProxy round robin.

Starts redis-server, tlscache-server on it, three nginx (master + 2 workers each, loaded with
libtlscache_preload.so) on 127.0.0.11-13 and HAProxy in front; connects 10 times with a client
that offers its newest session, printing which node served each connection and whether the
session was resumed; then stops everything.
"""

import ssl
import sys

import tlsfarm


def main():
    farm = tlsfarm.Farm()
    ok = False
    try:
        redis = farm.redis()
        cache = farm.cache(store=f"redis://127.0.0.1:{redis.port}")
        port = tlsfarm.free_port(tlsfarm.NODE_IPS)
        env = {"TLSCACHE_ADDR": cache.addr, "TLSCACHE_TICKETS": "off"}
        for i, ip in enumerate(tlsfarm.NODE_IPS):
            farm.nginx(ip, port, f"nginx{i + 1}", env=env)
        lb = farm.haproxy(port)
        print(f"redis-server 127.0.0.1:{redis.port} <- tlscache-server {cache.addr} <- "
              f"3 nginx on {', '.join(f'{ip}:{port}' for ip in tlsfarm.NODE_IPS)} <- "
              f"HAProxy round robin 127.0.0.1:{lb}\n")
        for name, version in (("TLS 1.2", ssl.TLSVersion.TLSv1_2),
                              ("TLS 1.3", ssl.TLSVersion.TLSv1_3)):
            client = tlsfarm.Client(version)
            for n in range(1, 11):
                resumed, body, seconds = client.connect("127.0.0.1", lb)
                node = body.split()[1]
                print(f"{name} connection {n:2}: served by {node}, "
                      f"{'resumed' if resumed else 'full handshake'} ({seconds * 1000:.1f} ms)")
            print()
        ok = True
    finally:
        farm.close(print_logs=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
