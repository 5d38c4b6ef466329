"""The driver of bench/run.sh: measures tlscache side by side with its peers on this machine
and writes the figures to docs/benchmarks.md.

1. The cache service against Redis itself: redis-benchmark GET/SET against tlscache-bench rpc
   Get/Put on the memory store and on the Redis store, at the same concurrency and value size,
   and the Get latency of each store at half its peak rate.
2. Three-node round-robin farms behind HAProxy: tlscache (tlscache-tls-server nodes, and
   stock nginx with the preload library) against Apache mod_ssl with SSLSessionCache redis:
   and against stock nginx with per-node caches; by openssl s_time -reuse and by
   tlscache-bench tls.
3. What resuming another node's session adds: a local hit against two nodes in turn, with
   the near cache and without.
4. The lookup deadline on a saturated node: nginx with more workers than the cores carry,
   at the default timeout_ms (20 ms) and at 5 ms.
5. What a full handshake pays for sharing its session.
6. The push stream: stores up it against redis-benchmark SET; the cost of pushing to 3, 12
   and 48 followers; push lag; what a near-cache entry costs.
7. Memory over a long run (--soak_minutes, 10 by default).
8. One tenant's flood beside another tenant's stores: the quiet tenant's latency alone, with
   the flood on its replica, and with the flood on another replica (the machine's ceiling).
9. What sharing costs a node's processes: nginx ×3 with 2 and with 8 workers a node, TLS 1.3
   with stateful tickets (every handshake a session the farm learns) against the same farm
   with farm tickets (nothing leaves a node), CPU per handshake of the nodes and of the
   service; and the node's memory over a long run (--node_memory_minutes, 10 by default).

Every process is started here, on loopback, and stopped at the end of its part.
"""

import argparse
import datetime
import json
import os
import pickle
import platform
import re
import subprocess
import sys
import time
import unittest

import tlsfarm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

CONCURRENCY = (1, 16, 64)
# Parts 3, 6, 7 and 8 measure the pushes themselves (up to 48 followers of 1,000 stores/s, and
# floods): the service's push budget, which would stop them, is off there.
NO_PUSH_BUDGET = ["--push_budget=0"]
VALUE_SIZE = 256
KEYS = 10000


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def tlscache_bench(mode, *flags):
    argv = [tlsfarm.built("tlscache-bench"), mode, "--json", *flags]
    log(" ".join(argv[1:]))
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"tlscache-bench {mode} failed ({result.returncode})")
    return json.loads(result.stdout)


def redis_benchmark(port, test, clients, seconds):
    """redis-benchmark's {"rps", "p50_ms", "p99_ms"} for `test` (GET or SET) over 10,000 keys
    of 256-byte values, sized to run about `seconds`."""
    per_second = 15000 if clients == 1 else 90000
    argv = [tlsfarm.require("redis-benchmark"), "-p", str(port), "-c", str(clients), "-n",
            str(int(per_second * seconds)), "-d", str(VALUE_SIZE), "-r", str(KEYS), "-t",
            test.lower(), "--csv"]
    log(" ".join(argv[1:]))
    lines = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    header = [h.strip('"') for h in lines[0].split(",")]
    row = dict(zip(header, (v.strip('"') for v in lines[1].split(","))))
    return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
            "p99_ms": float(row["p99_latency_ms"])}


def ratio(value, peer):
    return f"{value / peer:.2f}×" if peer else "–"


def ms(microseconds):
    return f"{microseconds / 1000:.3f}"


# ---- 1. the cache service against Redis ---------------------------------------------------

def service_part(seconds):
    farm = tlsfarm.Farm()
    try:
        redis = farm.redis()
        stores = {"memory": farm.cache(),
                  "Redis": farm.cache(store=f"redis://127.0.0.1:{redis.port}")}
        rows = []
        for clients in CONCURRENCY:
            for test, mix in (("GET", "1:0"), ("SET", "0:1")):
                peer = redis_benchmark(redis.port, test, clients, seconds)
                row = {"test": test, "clients": clients, "redis": peer}
                for store, cache in stores.items():
                    row[store] = tlscache_bench(
                        "rpc", f"--addr={cache.addr}", f"--concurrency={clients}",
                        f"--duration={seconds}s", f"--value_size={VALUE_SIZE}", f"--mix={mix}",
                        f"--keys={KEYS}")
                rows.append(row)
        half = {}
        for store, cache in stores.items():
            peak = max(r[store]["calls_per_second"] for r in rows if r["test"] == "GET")
            half[store] = tlscache_bench(
                "rpc", f"--addr={cache.addr}", "--concurrency=64", f"--duration={seconds}s",
                f"--value_size={VALUE_SIZE}", "--mix=1:0", f"--keys={KEYS}",
                f"--rate={peak / 2:.0f}")
            half[store]["peak"] = peak
        return rows, half
    finally:
        farm.close()


def service_tables(rows, half):
    out = ["| call | concurrency | Redis (redis-benchmark) | tlscache, memory store | ratio "
           "| tlscache, Redis store | ratio | p50 / p99 ms: Redis · memory · Redis store |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        peer, memory, store = r["redis"], r["memory"], r["Redis"]
        call = "GET / Get" if r["test"] == "GET" else "SET / Put"
        out.append(
            f"| {call} | {r['clients']} | {peer['rps']:,.0f}/s | "
            f"{memory['calls_per_second']:,.0f}/s | {ratio(memory['calls_per_second'], peer['rps'])} "
            f"| {store['calls_per_second']:,.0f}/s | {ratio(store['calls_per_second'], peer['rps'])} "
            f"| {peer['p50_ms']:.3f}/{peer['p99_ms']:.3f} · "
            f"{ms(memory['latency']['p50_us'])}/{ms(memory['latency']['p99_us'])} · "
            f"{ms(store['latency']['p50_us'])}/{ms(store['latency']['p99_us'])} |")
    errors = sum(r[s]["errors"] + r[s]["wrong"] + r[s]["misses"] for r in rows
                 for s in ("memory", "Redis"))
    out += ["", f"Errors, misses and wrong values over every tlscache run above: {errors}.", "",
            "Get latency at half of the peak Get rate (paced calls, 64 slots; latency counted "
            "from when each call was due):", "",
            "| store | peak Get rate | paced at | p50 ms | p90 ms | p99 ms | p99.9 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for store, r in half.items():
        lat = r["latency"]
        out.append(f"| {store} | {r['peak']:,.0f}/s | {r['calls_per_second']:,.0f}/s | "
                   f"{ms(lat['p50_us'])} | {ms(lat['p90_us'])} | {ms(lat['p99_us'])} | "
                   f"{ms(lat['p999_us'])} |")
    return out


# ---- 2. farms behind a round-robin balancer ----------------------------------------------

def s_time(port, seconds):
    """openssl s_time -reuse over TLS 1.2: (connections per second, resumed %)."""
    argv = [tlsfarm.require("openssl"), "s_time", "-connect", f"127.0.0.1:{port}", "-reuse",
            "-time", str(seconds), "-tls1_2", "-www", "/"]
    log(" ".join(argv[1:]))
    start = time.monotonic()
    output = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    elapsed = time.monotonic() - start
    match = re.search(r"(\d+) connections in [\d.]+ real seconds", output)
    if not match:
        raise RuntimeError(f"openssl s_time: unexpected output: {output[-500:]}")
    connections = int(match.group(1))
    # One character per connection of the timed loop: 'r' when the session was reused.
    marks = "".join(re.findall(r"^[r*t3]+$", output, re.MULTILINE))
    resumed = marks.count("r")
    return {"per_second": connections / elapsed,
            "resumed_pct": 100.0 * resumed / len(marks) if marks else 0.0}


# Clients that connect again at once, and clients that come back after a pause (5 ms, far
# sooner than any real client).
PAUSE_MS = 5
TLS_RUNS = ((1, 0), (32, 0), (32, PAUSE_MS))


def tls_runs(port, seconds):
    runs = {}
    for version in ("1.2", "1.3"):
        for clients, pause in TLS_RUNS:
            runs[(version, clients, pause)] = tlscache_bench(
                "tls", f"--target=127.0.0.1:{port}", f"--tls={version}",
                f"--concurrency={clients}", f"--duration={seconds}s", "--resume=newest",
                f"--pause={pause}ms")
    return runs


def tlscache_nodes(farm, cache):
    return farm.nodes(tlscache=f"addr={cache.addr};sid_ctx=bench")


def preload_env(cache, **extra):
    """The preload library's variables for a farm on `cache`: stateful TLS 1.3 tickets kept in
    the cache, as in the tests."""
    return {"TLSCACHE_ADDR": cache.addr, "TLSCACHE_TICKETS": "off", **extra}


def nginx_nodes(farm, env, shared_cache, tickets=False):
    """`tickets`: nginx's session tickets on (its default), which TLSCACHE_TICKETS=farm puts
    under the farm's key ring; off, every TLS 1.3 ticket is a stateful one."""
    port, _ = farm.on_every_node(
        lambda ip, port, name: farm.nginx(ip, port, name, env=env, shared_cache=shared_cache,
                                          tickets=tickets))
    return port


def apache_nodes(farm, session_cache):
    port, _ = farm.on_every_node(
        lambda ip, port, name: farm.apache(ip, port, name, session_cache))
    return port


FARMS = [
    ("tlscache: tlscache-tls-server ×3, tlscache on Redis",
     lambda farm, redis, cache: tlscache_nodes(farm, cache)),
    ("tlscache: stock nginx ×3 + preload, tlscache on Redis",
     lambda farm, redis, cache: nginx_nodes(farm, preload_env(cache), shared_cache=False)),
    # The ceiling of the row above: farm tickets, so no cache call in any handshake.
    ("tlscache: stock nginx ×3 + preload, tickets=farm (no cache call in a handshake)",
     lambda farm, redis, cache: nginx_nodes(farm, {**preload_env(cache),
                                                   "TLSCACHE_TICKETS": "farm"},
                                            shared_cache=False, tickets=True)),
    ("Apache mod_ssl ×3, SSLSessionCache redis:",
     lambda farm, redis, cache: apache_nodes(farm, f"redis:127.0.0.1:{redis.port}")),
    ("stock nginx ×3, per-node caches",
     lambda farm, redis, cache: nginx_nodes(farm, None, shared_cache=True)),
]
APACHE_FARM = FARMS[3][0]


def farm_part(seconds):
    results = {}
    for name, start_nodes in FARMS:
        log(f"farm: {name}")
        farm = tlsfarm.Farm()
        try:
            redis = farm.redis()
            cache = farm.cache(store=f"redis://127.0.0.1:{redis.port}")
            lb = farm.haproxy(start_nodes(farm, redis, cache))
            results[name] = {"s_time": s_time(lb, seconds), "bench": tls_runs(lb, seconds)}
        except unittest.SkipTest as why:
            log(f"skipped {name}: {why}")
        finally:
            farm.close()
    return results


def farm_tables(results):
    apache = results.get(APACHE_FARM)
    out = ["Resumed handshakes per second (resumption % in brackets) through HAProxy round "
           "robin over three nodes, by clients that offer their newest session, as browsers "
           f"do: connecting again at once, or coming back {PAUSE_MS} ms after each connection. "
           "Ratios are of resumed handshakes per second against the Apache + Redis farm, at 32 "
           "clients (at once · coming back)."]
    for version in ("1.2", "1.3"):
        s_time_column = version == "1.2"
        out += ["", f"TLS {version}:", "",
                "| farm | " + ("s_time -reuse | " if s_time_column else "") +
                f"1 client | 32 clients | 32 clients, back after {PAUSE_MS} ms | ratio |",
                "| --- | " + ("---: | " if s_time_column else "") + "---: | ---: | ---: | ---: |"]
        for name, r in results.items():
            cells = []
            if s_time_column:
                st = r["s_time"]
                cells.append(f"{st['per_second'] * st['resumed_pct'] / 100:,.0f}/s "
                             f"({st['resumed_pct']:.0f}%)")
            for clients, pause in TLS_RUNS:
                b = r["bench"][(version, clients, pause)]
                cells.append(f"{b['resumed_per_second']:,.0f}/s ({b['resumption_pct']:.0f}%)")
            ratios = "–"
            if apache:
                ratios = " · ".join(
                    ratio(r["bench"][(version, 32, pause)]["resumed_per_second"],
                          apache["bench"][(version, 32, pause)]["resumed_per_second"])
                    for pause in (0, PAUSE_MS))
            out.append(f"| {name} | {' | '.join(cells)} | {ratios} |")
    failures = sum(b["failures"] for r in results.values() for b in r["bench"].values())
    out += ["", f"Failed connections over every farm run above: {failures}."]
    return out


# ---- 3. what a remote lookup adds -----------------------------------------------------------

# A TLS 1.2 resumption keeps its session, which OpenSSL then keeps in its own cache too: without
# that cache, every resumption on the pair is a lookup in the farm, as on a node that did not
# make the session.
FARM_LOOKUPS = ("--internal_cache=false",)

# Four processes on four addresses, one client visiting them in turn: the pair shares its
# sessions (the pushed or shared resumptions), the other two each keep their own (the local
# hits). Each process waits the same three connections between its turns, so both kinds of
# resumption meet processes equally warm, in the same run.
LOOKUP_IPS = tlsfarm.NODE_IPS + ["127.0.0.14"]
LOOKUP_CHAINS = "--chains=0,1,0,3"


def lookup_part(seconds):
    """Resumed-handshake latency, one client, each run a pair resuming each other's sessions
    beside two nodes of the same server resuming their own: tlscache-tls-server (pushed to its
    near cache, on the memory store and on Redis; with the near cache off, looked up in the
    service), stock nginx with the preload at the defaults against stock nginx, Apache's
    redis: against its shmcb."""
    rows = []
    farm = tlsfarm.Farm()
    try:
        redis, memory, shared = caches(farm)

        def own(ip, port, name):
            return farm.node(ip, port, name=name)

        def nginx_own(ip, port, name):
            return farm.nginx(ip, port, name, shared_cache=True)

        def shmcb(ip, port, name):
            return farm.apache(ip, port, name, f"shmcb:{farm.dir}/{name}.cache(512000)")

        runs = [
            ("tlscache-tls-server, pushed, memory store", "tlscache", "1.2",
             lambda ip, port, name: farm.node(ip, port, f"addr={memory.addr}", name=name,
                                              extra=FARM_LOOKUPS), own),
            ("tlscache-tls-server, pushed, Redis store", "tlscache", "1.2",
             lambda ip, port, name: farm.node(ip, port, f"addr={shared.addr}", name=name,
                                              extra=FARM_LOOKUPS), own),
            ("tlscache-tls-server, near cache off (a remote lookup), memory store", "remote",
             "1.2", lambda ip, port, name: farm.node(ip, port,
                                                     f"addr={memory.addr};near_cache_mb=0",
                                                     name=name, extra=FARM_LOOKUPS), own),
            ("stock nginx + preload at the defaults, pushed", "nginx", "1.3",
             lambda ip, port, name: farm.nginx(ip, port, name, shared_cache=True,
                                               env=preload_env(memory)), nginx_own),
            ("Apache mod_ssl, SSLSessionCache redis:", "apache", "1.2",
             lambda ip, port, name: farm.apache(ip, port, name, f"redis:127.0.0.1:{redis.port}"),
             shmcb),
        ]
        for name, kind, version, shared_node, own_node in runs:
            port = tlsfarm.free_port(LOOKUP_IPS)
            starts = (shared_node, own_node, shared_node, own_node)
            try:
                for i, (ip, start) in enumerate(zip(LOOKUP_IPS, starts)):
                    start(ip, port, f"{kind}{i}-{port}")
            except unittest.SkipTest as why:
                log(f"skipped {name}: {why}")
                continue
            targets = ",".join(f"{ip}:{port}" for ip in LOOKUP_IPS)
            r = tlscache_bench("tls", f"--target={targets}", LOOKUP_CHAINS, f"--tls={version}",
                               "--concurrency=1", f"--duration={seconds}s", "--resume=newest")
            rows.append((name, kind, version, r))
    finally:
        farm.close()
    return rows


def added_p50(r):
    """What a resumption of the other node's session adds at p50 over a local hit."""
    return r["resumed_elsewhere_latency"]["p50_us"] - r["resumed_here_latency"]["p50_us"]


def caches(farm):
    """A redis-server, and a tlscache-server on the memory store and one on that Redis."""
    redis = farm.redis()
    return redis, farm.cache(extra=NO_PUSH_BUDGET), farm.cache(
        store=f"redis://127.0.0.1:{redis.port}", extra=NO_PUSH_BUDGET)


def one_node_runs(seconds, versions, resume):
    """One client against one node at a time, for each TLS version: tlscache-tls-server on its
    own cache and with tlscache (memory store, Redis), Apache with shmcb and with redis:.
    Returns (node, kind, version, tlscache-bench result) rows."""
    rows = []
    farm = tlsfarm.Farm()
    try:
        redis, memory, shared = caches(farm)
        nodes = [
            ("tlscache-tls-server, its own OpenSSL cache", "internal",
             lambda port: farm.node("127.0.0.1", port, name=f"own-{port}")),
            ("tlscache-tls-server, tlscache on the memory store", "tlscache",
             lambda port: farm.node("127.0.0.1", port, tlscache=f"addr={memory.addr}",
                                    name=f"memory-{port}")),
            ("tlscache-tls-server, tlscache on Redis", "tlscache",
             lambda port: farm.node("127.0.0.1", port, tlscache=f"addr={shared.addr}",
                                    name=f"redis-{port}")),
            ("Apache mod_ssl, shmcb (its own cache)", "apache-internal",
             lambda port: farm.apache("127.0.0.1", port, f"shmcb-{port}",
                                      f"shmcb:{farm.dir}/shmcb-{port}.cache(512000)")),
            ("Apache mod_ssl, redis: (shared)", "apache",
             lambda port: farm.apache("127.0.0.1", port, f"apache-redis-{port}",
                                      f"redis:127.0.0.1:{redis.port}")),
        ]
        for name, kind, start in nodes:
            port = tlsfarm.free_port()
            try:
                start(port)
            except unittest.SkipTest as why:
                log(f"skipped {name}: {why}")
                continue
            for version in versions:
                r = tlscache_bench("tls", f"--target=127.0.0.1:{port}", f"--tls={version}",
                                   "--concurrency=1", f"--duration={seconds}s", resume)
                rows.append((name, kind, version, r))
    finally:
        farm.close()
    return rows


def lookup_table(rows):
    out = ["| pair | TLS | resumed % | local hit p50 · p90 µs | the other node's session "
           "p50 · p90 µs | added p50 µs |",
           "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, _, version, r in rows:
        here, there = r["resumed_here_latency"], r["resumed_elsewhere_latency"]
        out.append(f"| {name} | {version} | {r['resumption_pct']:.1f}% | "
                   f"{here['p50_us']:.0f} · {here['p90_us']:.0f} | "
                   f"{there['p50_us']:.0f} · {there['p90_us']:.0f} | {added_p50(r):+.0f} |")
    return out


# ---- 4. the lookup deadline on a saturated node -------------------------------------------

# Four nginx workers a node: twelve workers, the cache, Redis, HAProxy and 32 clients on the
# machine's cores, so every handshake waits for a core and a lookup's wall time grows with it.
SATURATED_WORKERS = 4
DEADLINES_MS = (20, 5)


def preload_lookups(nodes):
    """The lookups of every worker of `nodes`, from the last stats line each wrote to its
    node's error log: {"hits", "misses", "errors", "timeouts", "skipped", "near"}."""
    last = {}
    for node in nodes:
        with open(os.path.join(node.prefix, "logs", "error.log")) as f:
            for pid, stats in tlsfarm.preload_stats(f.read()).items():
                last[(node.prefix, pid)] = stats
    if not last:
        raise RuntimeError("no worker's stats line was read: the preload's line changed")
    keys = ("hits", "misses", "errors", "timeouts", "skipped", "near")
    return {k: sum(stats[k] for stats in last.values()) for k in keys}


def deadline_part(seconds):
    """TLS 1.2 and 1.3 at 32 clients through nginx ×3 with four workers each and the preload,
    at each lookup deadline; Apache + Redis as the peer. A fresh farm for each figure."""
    rows = []
    for version in ("1.2", "1.3"):
        for deadline in (*DEADLINES_MS, None):
            farm = tlsfarm.Farm()
            try:
                redis = farm.redis()
                if deadline is None:
                    name = "Apache mod_ssl ×3, SSLSessionCache redis:"
                    port = apache_nodes(farm, f"redis:127.0.0.1:{redis.port}")
                    nodes = []
                else:
                    cache = farm.cache(store=f"redis://127.0.0.1:{redis.port}")
                    name = f"nginx ×3 ({SATURATED_WORKERS} workers each) + preload"
                    env = preload_env(cache, TLSCACHE_TIMEOUT_MS=str(deadline),
                                      TLSCACHE_STATS_INTERVAL="1")
                    port, nodes = farm.on_every_node(
                        lambda ip, port, node: farm.nginx(ip, port, node, env=env,
                                                          workers=SATURATED_WORKERS))
                lb = farm.haproxy(port)
                r = tlscache_bench("tls", f"--target=127.0.0.1:{lb}", f"--tls={version}",
                                   "--concurrency=32", f"--duration={seconds}s",
                                   "--resume=newest")
                if nodes:
                    time.sleep(1.5)  # one more stats line from every worker
                    r["lookups"] = preload_lookups(nodes)
                rows.append((version, name, deadline, r))
            except unittest.SkipTest as why:
                log(f"skipped the deadline part: {why}")
                return rows
            finally:
                farm.close()
    return rows


def deadline_table(rows):
    out = ["| TLS | farm | timeout_ms | resumed/s (resumption) | lookups: near cache · service "
           "hits · timeouts · skipped by the breaker | ratio |",
           "| --- | --- | ---: | ---: | --- | ---: |"]
    for version, name, deadline, r in rows:
        peer = next(p for v, _, d, p in rows if v == version and d is None)
        lookups = r.get("lookups")
        counts = (f"{lookups['near']:,} · {lookups['hits']:,} · {lookups['timeouts']:,} · "
                  f"{lookups['skipped']:,}" if lookups else "–")
        out.append(f"| {version} | {name} | {deadline or '–'} | "
                   f"{r['resumed_per_second']:,.0f}/s ({r['resumption_pct']:.0f}%) | {counts} | "
                   f"{ratio(r['resumed_per_second'], peer['resumed_per_second'])} |")
    return out


# ---- 5. what a full handshake pays for its session to be in the farm ------------------------


def full_handshake_part(seconds):
    """Full-handshake latency of one node, one client offering no session: a node keeping its
    sessions itself against one that stores each in the farm (and awaits the store), beside
    Apache with shmcb and with redis: (whose store is in the handshake too)."""
    return one_node_runs(seconds, ("1.2", "1.3"), "--resume=none")


def full_handshake_table(rows):
    base = {}
    for name, kind, version, r in rows:
        if kind.endswith("internal"):
            base[(kind.startswith("apache"), version)] = r["full_latency"]["p50_us"]
    out = ["| node | TLS | full handshakes/s | p50 µs | p99 µs | added p50 µs |",
           "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, kind, version, r in rows:
        lat = r["full_latency"]
        own = base.get((kind.startswith("apache"), version))
        added = "–" if kind.endswith("internal") or own is None else f"{lat['p50_us'] - own:+.0f}"
        out.append(f"| {name} | {version} | {r['handshakes_per_second']:,.0f} | "
                   f"{lat['p50_us']:.0f} | {lat['p99_us']:.0f} | {added} |")
    return out


# ---- 6. the push stream ----------------------------------------------------------------------

FOLLOWERS = (3, 12, 48)
PUSH_RATE = 1000


def process_usage(cache):
    """(CPU seconds of the process, bytes it sent its followers) of a cache server so far."""
    with open(f"/proc/{cache.popen.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    sent = tlsfarm.value(tlsfarm.scrape(cache.metrics_port), "tlscache_feed_sent_bytes_total")
    return cpu, sent


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def push_part(seconds):
    """Stores up the Follow stream (awaited, as the plugin awaits a stateful session) against
    redis-benchmark SET; then 1,000 stores/s pushed to 3, 12 and 48 followers, with the
    service's CPU and bytes written, the push lag and what a near-cache entry costs."""
    puts, growth = [], []
    farm = tlsfarm.Farm()
    try:
        redis, memory, shared = caches(farm)
        for clients in CONCURRENCY[1:]:
            peer = redis_benchmark(redis.port, "SET", clients, seconds)
            row = {"clients": clients, "redis": peer}
            for store, cache in (("memory", memory), ("Redis", shared)):
                row[store] = tlscache_bench("stream", f"--addr={cache.addr}",
                                            f"--concurrency={clients}",
                                            f"--duration={seconds}s",
                                            f"--value_size={VALUE_SIZE}")
            puts.append(row)
        for followers in FOLLOWERS:
            metrics = tlsfarm.free_port()
            cache = farm.cache(extra=[f"--metrics_listen=127.0.0.1:{metrics}", *NO_PUSH_BUDGET])
            cache.metrics_port = metrics
            before = process_usage(cache)
            r = tlscache_bench("stream", f"--addr={cache.addr}", "--concurrency=16",
                               f"--followers={followers}", f"--rate={PUSH_RATE}",
                               f"--duration={seconds}s", f"--value_size={VALUE_SIZE}")
            after = process_usage(cache)
            r["cpu_pct"] = 100 * (after[0] - before[0]) / r["seconds"]
            r["written_per_second"] = (after[1] - before[1]) / r["seconds"]
            growth.append((followers, r))
            cache.stop()
    finally:
        farm.close()
    return puts, growth


def push_tables(puts, growth):
    out = ["Stores up the stream against redis-benchmark SET, same concurrency and value size "
           "(each store awaited, as a handshake that made a stateful session awaits it):", "",
           "| concurrency | Redis SET | tlscache stream, memory store | ratio | tlscache "
           "stream, Redis store | ratio | p50 / p99 ms: Redis · memory · Redis store |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in puts:
        m, r, peer = row["memory"], row["Redis"], row["redis"]
        out.append(
            f"| {row['clients']} | {peer['rps']:,.0f}/s | {m['puts_per_second']:,.0f}/s | "
            f"{ratio(m['puts_per_second'], peer['rps'])} | {r['puts_per_second']:,.0f}/s | "
            f"{ratio(r['puts_per_second'], peer['rps'])} | {peer['p50_ms']:.3f}/"
            f"{peer['p99_ms']:.3f} · {ms(m['put_latency']['p50_us'])}/"
            f"{ms(m['put_latency']['p99_us'])} · {ms(r['put_latency']['p50_us'])}/"
            f"{ms(r['put_latency']['p99_us'])} |")
    out += ["", f"{PUSH_RATE:,} stores/s (16 writers, {VALUE_SIZE}-byte sessions) pushed to "
            "each follower, on the memory store. CPU is the service process's (`/proc/PID/stat`), "
            "bytes what it sent its followers (`tlscache_feed_sent_bytes_total`, before gRPC's "
            "framing); push lag is from the writer sending a "
            "store to a follower holding it in its near cache, the largest p50 and p99 of the "
            "followers.", "",
            "| followers | service CPU | bytes sent to followers/s | bytes per store and "
            "follower | push lag p50 ms | p99 ms | every store reached every follower |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for followers, r in growth:
        per = r["written_per_second"] / (PUSH_RATE * followers)
        out.append(f"| {followers} | {r['cpu_pct']:.0f}% of a core | "
                   f"{r['written_per_second'] / 1e6:.2f} MB/s | {per:.0f} | "
                   f"{ms(r['lag_p50_us'])} | {ms(r['lag_p99_us'])} | "
                   f"{'yes' if r['complete'] else 'no'} ({r['gaps']} gaps) |")
    if growth and growth[0][1]["near_entries"]:
        r = growth[0][1]
        out += ["", f"A near-cache entry costs {r['near_bytes'] / r['near_entries']:.0f} bytes "
                f"of its bound for a {VALUE_SIZE}-byte session (its key, the session and "
                f"{128} bytes of index and list)."]
    return out


SOAK_RATE = 2000


def soak_part(minutes):
    """`minutes` of 2,000 stores/s pushed to three followers (16 MiB near caches), with the
    RSS of the service and of the load (writer and followers, one process) sampled."""
    if minutes <= 0:
        return None
    farm = tlsfarm.Farm()
    try:
        cache = farm.cache(extra=["--max_ttl=60s", "--default_ttl=60s", *NO_PUSH_BUDGET])
        argv = [tlsfarm.built("tlscache-bench"), "stream", "--json", "--progress=false",
                f"--addr={cache.addr}", "--concurrency=16", "--followers=3",
                f"--rate={SOAK_RATE}", f"--duration={minutes * 60}s",
                f"--value_size={VALUE_SIZE}"]
        log(" ".join(argv[1:]))
        load = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        samples = []
        started = time.monotonic()
        for at in (120, minutes * 60 - 5):  # after the TTL (60 s) and the bounds have filled
            time.sleep(max(0, at - (time.monotonic() - started)))
            samples.append((at, rss_mib(cache.popen.pid), rss_mib(load.pid)))
        result = json.loads(load.communicate()[0])
        return {"minutes": minutes, "samples": samples, "result": result}
    finally:
        farm.close()


def soak_table(soak):
    if soak is None:
        return ["Not run (`--soak_minutes=0`)."]
    out = ["| after | tlscache-server RSS | load (writer + 3 followers) RSS |",
           "| ---: | ---: | ---: |"]
    for at, server, load in soak["samples"]:
        out.append(f"| {at / 60:.1f} min | {server:.1f} MiB | {load:.1f} MiB |")
    r = soak["result"]
    out += ["", f"{r['acknowledged']:,} stores acknowledged of {r['puts']:,}, "
            f"{r['puts_per_second']:,.0f}/s; push lag p50 {ms(r['lag_p50_us'])} ms, p99 "
            f"{ms(r['lag_p99_us'])} ms; every store reached every follower: "
            f"{'yes' if r['complete'] else 'no'} ({r['gaps']} gaps)."]
    return out


# ---- 8. one tenant's flood and another's stores ----------------------------------------------

QUIET_RATE = 400
ROUNDS = 3


def stream_load(addr, ns, seconds, *flags):
    """A tlscache-bench stream process (started, not awaited)."""
    argv = [tlsfarm.built("tlscache-bench"), "stream", "--json", "--progress=false",
            f"--addr={addr}", f"--namespace={ns}", f"--duration={seconds}s", *flags]
    log(" ".join(argv[1:]))
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def finished(load):
    out = load.communicate()[0]
    if load.returncode != 0:
        raise RuntimeError(f"tlscache-bench stream failed ({load.returncode})")
    return json.loads(out)


def tenants_part(seconds):
    """A quiet tenant (4 writers, QUIET_RATE stores/s, one follower) alone; beside a flood of
    another tenant (64 writers of 2 KiB sessions as fast as they go, two followers) on the
    same replica; and beside the same flood on another replica of the same store, which
    shares the machine but no process with it: the ceiling of what isolation can do here.
    ROUNDS rounds, the three runs alternating. Memory store and Redis store."""
    rows = []
    for store in ("memory", "Redis"):
        farm = tlsfarm.Farm()
        try:
            url = "memory"
            if store == "Redis":
                url = f"redis://127.0.0.1:{farm.redis().port}"
            shared = farm.cache(store=url, extra=NO_PUSH_BUDGET)
            other = farm.cache(store=url, extra=NO_PUSH_BUDGET)
            runs = {"alone": [], "same": [], "other": []}
            for _ in range(ROUNDS):
                for kind in runs:
                    flood = None
                    if kind != "alone":
                        target = shared if kind == "same" else other
                        flood = stream_load(target.addr, "flood", seconds + 2,
                                            "--concurrency=64", "--followers=2",
                                            "--value_size=2048")
                        time.sleep(1)  # the flood at full speed before the quiet tenant
                    quiet = finished(stream_load(shared.addr, "quiet", seconds, "--concurrency=4",
                                                 f"--rate={QUIET_RATE}", "--followers=1",
                                                 f"--value_size={VALUE_SIZE}"))
                    result = {"quiet": quiet}
                    if flood is not None:
                        result["flood"] = finished(flood)
                    runs[kind].append(result)
            rows.append({"store": store, "runs": runs})
        finally:
            farm.close()
    return rows


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def tenants_table(rows):
    out = [f"The quiet tenant's stores (4 writers, {QUIET_RATE} stores/s, each awaited, one "
           "follower) alone, beside another tenant's flood (64 writers of 2 KiB sessions as "
           "fast as they go, two followers) on the same replica, and beside the same flood on "
           "another replica of the same store: that one shares the machine's two cores but no "
           "process, the ceiling of what isolation inside the service can give here. Medians "
           f"of {ROUNDS} rounds, the three runs alternating.", "",
           "| store | quiet alone p50 / p99 ms | flood on the same replica p50 / p99 ms | p99 "
           "ratio | flood on another replica p50 / p99 ms | p99 ratio | flood stores/s (same · "
           "other) | quiet: every store reached its follower |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        runs = row["runs"]

        def p(kind, q):
            return median([r["quiet"]["put_latency"][q] for r in runs[kind]])

        def flood(kind):
            return median([r["flood"]["puts_per_second"] for r in runs[kind]])

        complete = all(r["quiet"]["complete"] for kind in runs for r in runs[kind])
        out.append(
            f"| {row['store']} | {ms(p('alone', 'p50_us'))} / {ms(p('alone', 'p99_us'))} | "
            f"{ms(p('same', 'p50_us'))} / {ms(p('same', 'p99_us'))} | "
            f"{ratio(p('same', 'p99_us'), p('alone', 'p99_us'))} | "
            f"{ms(p('other', 'p50_us'))} / {ms(p('other', 'p99_us'))} | "
            f"{ratio(p('other', 'p99_us'), p('alone', 'p99_us'))} | "
            f"{flood('same'):,.0f} · {flood('other'):,.0f} | {'yes' if complete else 'no'} |")
    return out


# ---- the targets ----------------------------------------------------------------------------


def verdict(met):
    return "met" if met else "**not met**"


def target_table(service_rows, half, farms, lookups, deadlines, puts, growth, soak):
    out = ["| target | measured | |", "| --- | --- | --- |"]
    gets = [r for r in service_rows if r["test"] == "GET"]
    store = [r["Redis"]["calls_per_second"] / r["redis"]["rps"] for r in gets]
    out.append("| Redis store Get ≥ 1.0× redis-benchmark GET, same concurrency | " +
               ", ".join(f"{x:.2f}× at {r['clients']}" for x, r in zip(store, gets)) +
               f" | {verdict(min(store) >= 1.0)} |")
    memory = [r["memory"]["calls_per_second"] / r["Redis"]["calls_per_second"] for r in gets]
    out.append("| memory store Get above the Redis store's | " +
               ", ".join(f"{x:.2f}× at {r['clients']}" for x, r in zip(memory, gets)) +
               f" | {verdict(min(memory) > 1.0)} |")
    p99 = {store: r["latency"]["p99_us"] for store, r in half.items()}
    out.append("| Get p99 ≤ 1 ms at half of peak | " +
               ", ".join(f"{ms(v)} ms ({s})" for s, v in p99.items()) +
               f" | {verdict(max(p99.values()) <= 1000)} |")
    apache = farms.get(APACHE_FARM)
    if apache:
        cells, ratios = [], []
        for name, r in farms.items():
            if not name.startswith("tlscache"):
                continue
            mine = [r["bench"][(version, 32, pause)]["resumed_per_second"] /
                    apache["bench"][(version, 32, pause)]["resumed_per_second"]
                    for version in ("1.2", "1.3") for pause in (0, PAUSE_MS)]
            # The farm-ticket row is the ceiling shown beside the target, not the target's.
            ceiling = "tickets=farm" in name
            if not ceiling:
                ratios += mine
            cells.append(f"{name.split(': ')[1].split(',')[0]}"
                         f"{' (the ceiling: farm tickets)' if ceiling else ''}: " +
                         " / ".join(f"{x:.2f}×" for x in mine))
        out.append("| farm resumed handshakes/s ≥ 1.2× Apache + Redis (32 clients; TLS 1.2 at "
                   f"once / back after {PAUSE_MS} ms, TLS 1.3 at once / back) | "
                   + "; ".join(cells) + f" | {verdict(min(ratios) >= 1.2)} |")
    added = [(name, added_p50(r)) for name, kind, _, r in lookups
             if kind in ("tlscache", "nginx")]
    nginx = [a for name, kind, _, r in lookups if kind == "nginx" for a in [added_p50(r)]]
    if nginx:
        out.append("| a resumption of another node's session, once pushed, adds ≤ 25 µs p50 "
                   "over a local hit (nginx + preload at the defaults; Apache + Redis: "
                   f"{apache_added(lookups)}) | " +
                   "; ".join(f"{a:+.0f} µs ({n})" for n, a in added) +
                   f" | {verdict(max(nginx) <= 25)} |")
    if growth:
        r = growth[0][1]
        out.append(f"| push lag p99 ≤ 5 ms at {PUSH_RATE:,} new sessions/s | p50 "
                   f"{ms(r['lag_p50_us'])} ms, p99 {ms(r['lag_p99_us'])} ms ({growth[0][0]} "
                   f"followers) | {verdict(r['lag_p99_us'] <= 5000)} |")
    defaults = [(v, r) for v, _, d, r in deadlines if d == DEADLINES_MS[0]]
    if defaults:
        out.append("| part 4 at the default `timeout_ms`: ≥ 95% resumption, TLS 1.2 and 1.3 | " +
                   ", ".join(f"TLS {v}: {r['resumption_pct']:.0f}%" for v, r in defaults) +
                   f" | {verdict(min(r['resumption_pct'] for _, r in defaults) >= 95)} |")
    if puts:
        x = [(row["clients"], row["memory"]["puts_per_second"] / row["redis"]["rps"],
              row["Redis"]["puts_per_second"] / row["redis"]["rps"]) for row in puts]
        out.append("| stores through the stream ≥ 1.0× redis-benchmark SET (16 and 64) | " +
                   ", ".join(f"{m:.2f}× / {r:.2f}× at {c} (memory / Redis store)"
                             for c, m, r in x) +
                   f" | {verdict(min(min(m, r) for _, m, r in x) >= 1.0)} |")
    if soak is not None:
        (_, server0, load0), (_, server1, load1) = soak["samples"][0], soak["samples"][-1]
        flat = server1 <= server0 * 1.1 + 4 and load1 <= load0 * 1.1 + 4
        out.append(f"| {soak['minutes']}-minute run at {SOAK_RATE:,} new sessions/s, 16 MiB "
                   f"bound: RSS flat | service {server0:.0f} → {server1:.0f} MiB, load "
                   f"{load0:.0f} → {load1:.0f} MiB | {verdict(flat)} |")
    return out


def apache_added(lookups):
    shared = [added_p50(r) for _, kind, _, r in lookups if kind == "apache"]
    return f"{shared[0]:+.0f} µs" if shared else "–"


# ---- 9. what sharing costs a node's processes ------------------------------------------------

NODE_ROWS = (  # (label, workers a node, extra preload variables)
    ("stateful tickets, 2 workers a node", 2, {}),
    ("stateful tickets, 8 workers a node", 8, {}),
    ("farm tickets, 2 workers a node", 2, {"TLSCACHE_TICKETS": "farm"}),
    ("farm tickets, 8 workers a node", 8, {"TLSCACHE_TICKETS": "farm"}),
    ("stateful tickets, 8 workers a node, near cache off", 8, {"TLSCACHE_NEAR_CACHE_MB": "0"}),
)
NODE_ROUNDS = 3
NODE_CLIENTS = 8


def cpu_seconds(pid):
    """CPU seconds of a process so far, its children that exited included (nginx workers
    replaced or ended count for the master)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def node_pids(node):
    children = subprocess.run(["pgrep", "-P", str(node.popen.pid)], capture_output=True,
                              text=True).stdout.split()
    return [node.popen.pid, *(int(pid) for pid in children)]


def sharing_farm(farm, workers, variables):
    redis = farm.redis()
    cache = farm.cache(store=f"redis://127.0.0.1:{redis.port}")
    env = preload_env(cache, **variables)
    # Farm tickets need nginx's own tickets on (its default); the stateful rows keep them off.
    tickets = variables.get("TLSCACHE_TICKETS") == "farm"
    port, nodes = farm.on_every_node(
        lambda ip, port, name: farm.nginx(ip, port, name, env=env, workers=workers,
                                          tickets=tickets))
    return cache, nodes, farm.haproxy(port)


def node_cpu_part(seconds):
    """Each row of NODE_ROWS NODE_ROUNDS times, the rows alternating; a fresh farm for each
    run; CPU of every nginx process (the workers' own) and of tlscache-server, from /proc."""
    runs = {label: [] for label, _, _ in NODE_ROWS}
    for _ in range(NODE_ROUNDS):
        for label, workers, variables in NODE_ROWS:
            log(f"node cost: {label}")
            farm = tlsfarm.Farm()
            try:
                cache, nodes, lb = sharing_farm(farm, workers, variables)
                pids = [pid for node in nodes for pid in node_pids(node)]
                before = sum(cpu_seconds(pid) for pid in pids), cpu_seconds(cache.popen.pid)
                r = tlscache_bench("tls", f"--target=127.0.0.1:{lb}", "--tls=1.3",
                                   f"--concurrency={NODE_CLIENTS}", f"--duration={seconds}s",
                                   "--resume=newest")
                after = sum(cpu_seconds(pid) for pid in pids), cpu_seconds(cache.popen.pid)
                handshakes = max(1, r["handshakes"])
                runs[label].append({
                    "handshakes": r["handshakes"], "resumption_pct": r["resumption_pct"],
                    "failures": r["failures"],
                    "nodes_us": (after[0] - before[0]) / handshakes * 1e6,
                    "service_us": (after[1] - before[1]) / handshakes * 1e6})
            finally:
                farm.close()
    return runs


def node_memory_part(minutes):
    """`minutes` of TLS 1.3 stateful tickets (a new session each connection) through nginx ×3
    at 2 and then 8 workers a node; the proportional set size (PSS: shared pages divided among
    the processes that map them) of node 1's processes, in all and of the near cache's mapping
    alone, after the first minute and at the end."""
    if minutes <= 0:
        return None
    rows = []
    for workers in (2, 8):
        farm = tlsfarm.Farm()
        try:
            _, nodes, lb = sharing_farm(farm, workers, {})
            argv = [tlsfarm.built("tlscache-bench"), "tls", "--json", "--progress=false",
                    f"--target=127.0.0.1:{lb}", "--tls=1.3", "--concurrency=8",
                    "--pause=6ms", "--resume=newest", f"--duration={minutes * 60}s"]
            log(" ".join(argv[1:]))
            load = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            samples = []
            started = time.monotonic()
            for at in (60, minutes * 60 - 5):
                time.sleep(max(0, at - (time.monotonic() - started)))
                samples.append((at, *node_pss_mib(nodes[0])))
            result = json.loads(load.communicate()[0])
            rows.append({"workers": workers, "samples": samples, "result": result,
                         "minutes": minutes})
        finally:
            farm.close()
    return rows


NEAR_CACHE_KIB = 16 << 10  # the default bound: the node's mapping of that size


def node_pss_mib(node):
    """(PSS of the node's processes, PSS of its near cache's mapping) in MiB."""
    total = near = 0
    for pid in node_pids(node):
        try:
            with open(f"/proc/{pid}/smaps") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        size = 0
        for line in lines:
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("Pss:"):
                kib = int(line.split()[1])
                total += kib
                if size == NEAR_CACHE_KIB:
                    near += kib
    return total / 1024, near / 1024


def node_tables(node_cpu, node_memory):
    out = [f"TLS 1.3 through HAProxy round robin over nginx ×3 with the preload, "
           f"{NODE_CLIENTS} clients each offering its newest ticket once (as browsers and curl "
           "do, RFC 8446), for the length of a run; the median of "
           f"{NODE_ROUNDS} runs of each row, the rows alternating, a fresh farm each run. CPU "
           "per handshake from /proc: every nginx process of the three nodes, and "
           "tlscache-server (on Redis).", "",
           "| farm | handshakes a run | resumed | nodes, µs CPU per handshake | service, µs per "
           "handshake |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, runs in node_cpu.items():
        m = node_medians(runs)
        out.append(f"| {label} | {m['handshakes']:,.0f} | {m['resumption_pct']:.0f}% | "
                   f"{m['nodes_us']:,.0f} | {m['service_us']:,.0f} |")
    failures = sum(r["failures"] for runs in node_cpu.values() for r in runs)
    out += ["", f"Failed connections over these runs: {failures}.", ""]
    if node_memory is None:
        return out + ["The memory run was not made (`--node_memory_minutes=0`)."]
    out += [f"Memory: {node_memory[0]['minutes']} minutes of TLS 1.3 stateful tickets through "
            "the same farm (8 clients, 6 ms between connections), at 2 and at 8 workers a "
            "node; node 1's proportional set size (PSS: a shared page counted once across its "
            "processes), in all and of the near cache's mapping (16 MiB, the default bound).",
            "", "| workers a node | after | node PSS | near cache PSS | new sessions/s |",
            "| ---: | ---: | ---: | ---: | ---: |"]
    for row in node_memory:
        rate = row["result"]["handshakes_per_second"]
        for at, total, near in row["samples"]:
            out.append(f"| {row['workers']} | {at / 60:.1f} min | {total:.1f} MiB | "
                       f"{near:.1f} MiB | {rate:,.0f} |")
    return out


def node_medians(runs):
    return {key: median([r[key] for r in runs])
            for key in ("handshakes", "resumption_pct", "nodes_us", "service_us")}


def node_targets(node_cpu, node_memory):
    m = {label: node_medians(runs) for label, runs in node_cpu.items()}
    s2, s8 = m[NODE_ROWS[0][0]], m[NODE_ROWS[1][0]]
    f2, f8 = m[NODE_ROWS[2][0]], m[NODE_ROWS[3][0]]
    growth, farm_growth = s8["nodes_us"] / s2["nodes_us"], f8["nodes_us"] / f2["nodes_us"]
    out = [f"| nodes' CPU per stateful handshake, 2 → 8 workers, grows by at most the farm "
           f"tickets' growth × 1.1 | {growth:.2f}× (farm tickets {farm_growth:.2f}×) | "
           f"{verdict(growth <= farm_growth * 1.1)} |",
           f"| at 8 workers, nodes' CPU per stateful handshake ≤ 1.3× farm tickets' | "
           f"{s8['nodes_us'] / f8['nodes_us']:.2f}× ({s8['nodes_us']:,.0f} against "
           f"{f8['nodes_us']:,.0f} µs) | {verdict(s8['nodes_us'] <= 1.3 * f8['nodes_us'])} |",
           f"| service CPU per handshake, 2 → 8 workers, ≤ ×1.2, and ≤ 150 µs | "
           f"{s2['service_us']:.0f} → {s8['service_us']:.0f} µs | "
           f"{verdict(s8['service_us'] <= 1.2 * s2['service_us'] and max(s2['service_us'], s8['service_us']) <= 150)} |",
           f"| stateful TLS 1.3 farm ≥ 0.9× the same farm with farm tickets (handshakes, 2 / 8 "
           f"workers) | {s2['handshakes'] / f2['handshakes']:.2f}× / "
           f"{s8['handshakes'] / f8['handshakes']:.2f}× | "
           f"{verdict(min(s2['handshakes'] / f2['handshakes'], s8['handshakes'] / f8['handshakes']) >= 0.9)} |"]
    if node_memory:
        near = {row["workers"]: row["samples"][-1][2] for row in node_memory}
        out.append(f"| the near cache's share of a node's memory does not grow with its workers "
                   f"({node_memory[0]['minutes']} min) | {near[2]:.1f} MiB at 2 workers, "
                   f"{near[8]:.1f} MiB at 8 | {verdict(near[8] <= near[2] * 1.1 + 1)} |")
    return out


# ---- the page -------------------------------------------------------------------------------

def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} × {model}, Linux {platform.release()}, "
            f"{subprocess.run(['openssl', 'version'], capture_output=True, text=True).stdout.strip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each measurement")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--soak_minutes", type=int, default=10,
                        help="length of the RSS run of part 7 (0: skip it)")
    parser.add_argument("--node_memory_minutes", type=int, default=10,
                        help="length of each memory run of part 9 (0: skip it)")
    parser.add_argument("--results", default=os.path.join(ROOT, "build", "bench-results.pickle"),
                        help="where the raw results are kept")
    parser.add_argument("--page_only", action="store_true",
                        help="write the page again from the kept results (bench/notes.md edited)")
    parser.add_argument("--parts", default="",
                        help="comma-separated part numbers to measure again, the others taken "
                        "from the kept results (default: all)")
    args = parser.parse_args()
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    parts = (lambda: service_part(args.seconds), lambda: farm_part(args.seconds),
             lambda: lookup_part(args.seconds), lambda: deadline_part(args.seconds),
             lambda: full_handshake_part(args.seconds), lambda: push_part(args.seconds),
             lambda: soak_part(args.soak_minutes), lambda: tenants_part(args.seconds),
             lambda: (node_cpu_part(max(args.seconds, 8)),
                      node_memory_part(args.node_memory_minutes)))
    try:
        again = [int(n) for n in args.parts.split(",") if n] or list(range(1, len(parts) + 1))
    except ValueError:
        parser.error(f"--parts={args.parts}: expected part numbers, e.g. 6,8")
    if any(n < 1 or n > len(parts) for n in again):
        parser.error(f"--parts={args.parts}: the parts are 1 to {len(parts)}")
    if args.page_only or len(again) < len(parts):
        try:
            with open(args.results, "rb") as f:
                kept = pickle.load(f)
        except OSError as e:
            parser.error(f"no kept results to take the other parts from ({e}): run them all")
        kept["parts"] += [None] * (len(parts) - len(kept["parts"]))
    if not args.page_only:
        started = time.monotonic()
        if len(again) == len(parts):
            kept = {"parts": [None] * len(parts), "seconds": args.seconds,
                    "soak_minutes": args.soak_minutes, "date": datetime.date.today().isoformat(),
                    "minutes": 0}
        spent = kept["minutes"]
        for n in again:
            kept["parts"][n - 1] = parts[n - 1]()
            kept["minutes"] = spent + (time.monotonic() - started) / 60
            with open(args.results, "wb") as f:  # kept part by part: a late failure loses one
                pickle.dump(kept, f)
    if None in kept["parts"]:
        parser.error("the kept results miss part "
                     f"{kept['parts'].index(None) + 1}: measure it (--parts)")
    ((service_rows, half), farms, lookups, deadlines, full, (puts, growth),
     soak, tenants, (node_cpu, node_memory)) = kept["parts"]
    minutes = kept["minutes"]
    args.seconds, args.soak_minutes = kept["seconds"], kept["soak_minutes"]
    command = "bench/run.sh" + (f" --seconds={args.seconds}" if args.seconds != 5 else "")
    page = [
        "# Benchmarks", "",
        f"Measured by `{command}` on {kept['date']}, in {minutes:.0f} "
        "minutes, on one machine: " + machine() + ". Every server, balancer and load generator "
        "ran on that machine at once, over loopback, so the figures are for comparison with "
        "each other, not for capacity planning: each table sets tlscache beside a peer "
        f"measured in the same run. Each figure is one run of {args.seconds} s.", "",
        "How the figures were measured, and what the profiles showed where a target is not "
        "met: see the end of this page.", "",
        "## 1. The cache service against Redis", "",
        "redis-benchmark GET/SET against `tlscache-bench rpc` Get/Put (one gRPC channel), "
        f"{VALUE_SIZE}-byte values, {KEYS:,} keys, each key stored before the Gets.", "",
        *service_tables(service_rows, half), "",
        "## 2. Farms: three nodes behind HAProxy round robin", "",
        *farm_tables(farms), "",
        "## 3. What resuming another node's session adds", "",
        "One client connecting to four nodes in turn and resuming each time: two of them "
        "share sessions, so that every resumption there is of a session the other one made, "
        "and two keep their own, so that every resumption there is a local hit. Each node "
        "waits the same three connections between its turns, so the two kinds are measured "
        "side by side in one run, on nodes equally warm. The sharing tlscache-tls-server nodes "
        "run with `--internal_cache=false`, so that every TLS 1.2 resumption there goes "
        "through tlscache (a resumed TLS 1.2 session keeps its ID, and OpenSSL would keep it "
        "in its own cache). \"Pushed\" nodes find the session in "
        "their near cache, the \"near cache off\" ones ask the service; their local hits are "
        "tlscache-tls-server's own OpenSSL cache. nginx runs TLS 1.3 with its shared cache "
        "(`ssl_session_cache shared:SSL:10m`) and stateful tickets, where every resumption "
        "offers the ticket the other node issued last; its local hits are stock nginx. "
        "Apache's are shmcb. \"Added\" is the p50 over the local hit.", "",
        *lookup_table(lookups), "",
        "## 4. The lookup deadline on a saturated node", "",
        f"The nginx farm of part 2 with {SATURATED_WORKERS} workers a node in place of two, "
        "32 clients, at the default `timeout_ms` (20 ms) and at 5 ms, beside the Apache + "
        "Redis farm. Twelve workers and everything else share the machine's cores, so a "
        "lookup waits for a core as well as for the cache. The lookup counts are the sum of "
        "the workers' stats lines (`TLSCACHE_STATS_INTERVAL`).", "",
        *deadline_table(deadlines), "",
        "## 5. What a full handshake pays for sharing its session", "",
        "One node, one client making full handshakes one after another (`--resume=none`). A "
        "node with tlscache stores each new session in the farm and waits for the store's "
        "acknowledgement (at most `timeout_ms`) before the handshake sends what its client "
        "could come back with: a client that reconnects at once to another node then finds "
        "its session there. Under TLS 1.3 a full handshake stores two stateful tickets. "
        "Apache's `redis:` cache stores in the handshake too. \"Added\" is the p50 over the "
        "same server keeping its sessions itself.", "",
        *full_handshake_table(full), "",
        "## 6. The push stream", "",
        *push_tables(puts, growth), "",
        "## 7. Memory over a long run", "",
        f"{args.soak_minutes} minutes of {SOAK_RATE:,} stores/s pushed to three followers "
        "with 16 MiB near caches (the default bound), the service on the memory store with "
        "`--max_ttl=60s`, so that both the service's entries and the near caches reach their "
        "steady state within the first two minutes. RSS from `/proc/PID/status`.", "",
        *soak_table(soak), "",
        "## 8. One tenant's flood and another tenant's stores", "",
        *tenants_table(tenants), "",
        "## 9. What sharing costs a node's processes", "",
        *node_tables(node_cpu, node_memory), "",
        "## Against the targets", "",
        *target_table(service_rows, half, farms, lookups, deadlines, puts, growth, soak),
        *node_targets(node_cpu, node_memory), "",
    ]
    notes = os.path.join(ROOT, "bench", "notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            page.append(f.read().rstrip())
    with open(args.out, "w") as f:
        f.write("\n".join(page) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
