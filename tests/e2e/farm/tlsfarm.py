"""Real processes for farm tests: redis-server, tlscache-server, tlscache-tls-server nodes and
HAProxy on loopback, plus a TLS client that offers its newest session on every reconnect.

Everything a test starts is registered with its Farm and stopped (and its logs printed on a
failure) when the Farm closes.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

BIN_DIR = os.environ.get("TLSCACHE_BIN_DIR", os.path.join(os.path.dirname(__file__),
                                                         "../../../build/bin"))
NODE_IPS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
REQUEST = b"GET / HTTP/1.0\r\nHost: farm\r\n\r\n"


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


class Farm:
    """Owns the processes of one test and a temporary directory for their files."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tlscache-farm-")
        self.processes = []
        self.cert, self.key = self._make_certificate()

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
        if reports:
            raise AssertionError(f"sanitizer reports from {', '.join(reports)}")

    def _make_certificate(self):
        cert = os.path.join(self.dir, "cert.pem")
        key = os.path.join(self.dir, "key.pem")
        subprocess.run([require("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=farm.test"],
                       check=True, capture_output=True)
        return cert, key

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
        """A certificate for `name` from the farm's CA called `ca_name` (made on first use),
        with `subject_alt_name` in openssl's syntax ("URI:spiffe://farm/x"). Returns
        (cert, key, ca) paths."""
        openssl = require("openssl")
        ca = os.path.join(self.dir, f"{ca_name}.pem")
        ca_key = os.path.join(self.dir, f"{ca_name}.key")
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        if not os.path.exists(ca):
            subprocess.run([openssl, "req", "-x509", *new_key, "-keyout", ca_key, "-out", ca,
                            "-days", "2", "-subj", f"/CN=tlscache farm {ca_name}"],
                           check=True, capture_output=True)
        cert, key, csr, ext = (os.path.join(self.dir, f"{name}.{suffix}")
                               for suffix in ("pem", "key", "csr", "ext"))
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n")
            if subject_alt_name:
                f.write(f"subjectAltName={subject_alt_name}\n")
            f.write(f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}\n")
        subprocess.run([openssl, "req", *new_key, "-keyout", key, "-out", csr, "-subj",
                        f"/CN={name}"], check=True, capture_output=True)
        subprocess.run([openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                        "-out", cert, "-days", "2", "-extfile", ext],
                       check=True, capture_output=True)
        return cert, key, ca

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

    def nginx(self, ip, port, name, env=None, shared_cache=False, workers=2, tickets=False,
              directives="", blocks=None, sni_blocks=None, ticket_settings=None):
        """Stock nginx (master and `workers` workers) serving TLS on ip:port; with `env`, run
        with the tlscache preload library and those TLSCACHE_* variables. `directives` go
        into the server block (after the ticket and cache settings). `blocks` adds
        server blocks: {port: directives}, each answering like the first and naming its
        port and $ssl_client_verify. `sni_blocks` adds server blocks on the same port that
        SNI selects: {server_name: directives}, each naming itself; those directives replace
        the ticket and cache settings. `ticket_settings` replaces `tickets` as nginx reads it
        (None: "ssl_session_tickets off;" unless `tickets`; "" is nginx's default)."""
        prefix = os.path.join(self.dir, name)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        config = os.path.join(prefix, "nginx.conf")
        cache = "ssl_session_cache shared:SSL:10m;" if shared_cache else ""
        if ticket_settings is None:
            ticket_settings = "" if tickets else "ssl_session_tickets off;"  # nginx's default: on

        def server(block_port, settings, reply, server_name="", ticket_lines=ticket_settings):
            return f"""
  server {{
    listen {ip}:{block_port} ssl;
    {f"server_name {server_name};" if server_name else ""}
    ssl_certificate {self.cert};
    ssl_certificate_key {self.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    {ticket_lines}
    {settings}
    location / {{
      return 200 "node {name} {reply}pid $pid $ssl_protocol $ssl_session_reused\n";
    }}
  }}"""

        servers = server(port, f"{cache}\n    {directives}", "") + "".join(
            server(block_port, block_directives, f"port {block_port} $ssl_client_verify ")
            for block_port, block_directives in (blocks or {}).items()) + "".join(
            server(port, block_directives, f"sni {server_name} $ssl_client_verify ",
                   server_name=server_name, ticket_lines="")
            for server_name, block_directives in (sni_blocks or {}).items())
        with open(config, "w") as f:
            f.write(f"""daemon off;
master_process on;
worker_processes {workers};
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;{servers}
}}
""")
        argv = [require("nginx"), "-p", prefix, "-c", config, "-e", f"{prefix}/logs/error.log"]
        process = self.start(name, argv, env=preload_environment(env))
        wait_for_port(ip, port, process=process.popen)
        process.config = config
        process.prefix = prefix
        process.ip = ip
        return process

    def apache(self, ip, port, name, session_cache):
        """Stock Apache httpd (event MPM) with mod_ssl serving TLS on ip:port, with
        `session_cache` as its SSLSessionCache ("redis:127.0.0.1:6379", "shmcb:PATH(SIZE)").
        Every node has the same ServerName and port, so the same session ID context: a session
        resumes on any node that finds it in the cache. Tickets are off, so TLS 1.3 resumes
        through the cache too."""
        apache2 = require("apache2")
        modules = "/usr/lib/apache2/modules"
        prefix = os.path.join(self.dir, name)
        os.makedirs(os.path.join(prefix, "htdocs"), exist_ok=True)
        with open(os.path.join(prefix, "htdocs", "index.html"), "w") as f:
            f.write(f"node {name}\n")
        config = os.path.join(prefix, "apache2.conf")
        loads = "\n".join(f"LoadModule {module}_module {modules}/mod_{module}.so"
                          for module in ("mpm_event", "authz_core", "dir", "socache_shmcb",
                                         "socache_redis", "ssl"))
        with open(config, "w") as f:
            f.write(f"""ServerRoot {prefix}
{loads}
DefaultRuntimeDir {prefix}
PidFile {prefix}/apache2.pid
ErrorLog {prefix}/error.log
LogLevel warn
User www-data
Group www-data
ServerName farm.test
Listen {ip}:{port}
KeepAlive Off
StartServers 2
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 64
DocumentRoot {prefix}/htdocs
DirectoryIndex index.html
<Directory {prefix}/htdocs>
  Require all granted
</Directory>
SSLEngine on
SSLCertificateFile {self.cert}
SSLCertificateKeyFile {self.key}
SSLProtocol -all +TLSv1.2 +TLSv1.3
SSLSessionTickets off
SSLSessionCache {session_cache}
SSLSessionCacheTimeout 300
""")
        os.chmod(prefix, 0o755)
        os.chmod(os.path.join(prefix, "htdocs"), 0o755)
        os.chmod(self.dir, 0o755)
        process = self.start(name, [apache2, "-f", config, "-DFOREGROUND"])
        wait_for_port(ip, port, process=process.popen)
        return process

    def haproxy_tls(self, ip, port, name, env=None, bind_options=""):
        """HAProxy terminating TLS on ip:port and answering itself; with `env`, run with the
        tlscache preload library and those TLSCACHE_* variables. `bind_options` go on its
        bind line (say, "no-tls-tickets" or "tls-ticket-keys FILE")."""
        pem = os.path.join(self.dir, "haproxy.pem")
        if not os.path.exists(pem):
            with open(pem, "w") as f:
                f.write(open(self.cert).read() + open(self.key).read())
        config = self._haproxy_config(f"{name}.cfg", "http", f"""frontend tls
  bind {ip}:{port} ssl crt {pem} {bind_options}
  http-request return status 200 content-type text/plain lf-string "node {name} pid %pid %[ssl_fc_protocol] %[ssl_fc_is_resumed]"
""")
        process = self.start(name, [require("haproxy"), "-f", config, "-db"],
                             env=preload_environment(env))
        wait_for_port(ip, port, process=process.popen)
        return process

    def _haproxy_config(self, file_name, mode, sections):
        config = os.path.join(self.dir, file_name)
        with open(config, "w") as f:
            f.write(f"""global
  maxconn 2000
defaults
  mode {mode}
  timeout connect 2s
  timeout client 10s
  timeout server 10s
{sections}""")
        return config

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

    def haproxy(self, backend_port):
        """HAProxy in TCP mode, strict round robin over the three nodes. Returns its port."""
        port = free_port()
        servers = "\n".join(f"  server node{i + 1} {ip}:{backend_port}"
                            for i, ip in enumerate(NODE_IPS))
        config = self._haproxy_config("haproxy.cfg", "tcp", f"""frontend tls
  bind 127.0.0.1:{port}
  default_backend farm
backend farm
  balance roundrobin
{servers}
""")
        process = self.start("haproxy", [require("haproxy"), "-f", config, "-db"])
        wait_for_port("127.0.0.1", port, process=process.popen)
        return port


class TcpProxy:
    """A TCP proxy on 127.0.0.1 to `port`, whose path the test cuts and restores: cut()
    resets every connection through it and refuses new ones until restore(), as a network
    partition between a replica and Redis would. freeze() silences the connections open now
    (what they carry is dropped, and nothing tells either end), as a middlebox that lost
    their state would, while new connections go through."""

    def __init__(self, port):
        self.target = port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open = []
        self.frozen = set()
        self.cut_off = False
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self):
        with self.lock:
            self.frozen.update(self.open)

    def cut(self):
        with self.lock:
            self.cut_off = True
            for s in self.open:
                try:
                    # Wakes the thread reading it (a close alone would not), which closes both
                    # ends of its connection.
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open = []

    def restore(self):
        with self.lock:
            self.cut_off = False

    def close(self):
        self.cut()
        self.listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.cut_off:
                    client.close()
                    continue
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)  # the timeout was for connecting; reads wait
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if source not in self.frozen:
                    sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.close()
            except OSError:
                pass


class DnsServer:
    """A DNS server on 127.0.0.1 (UDP) with the A records it is given, as a headless Service's
    name resolves to its ready pods: NXDOMAIN for other names, no answer for other types.
    Each answer lists the records rotated by one, as the cluster DNS does (CoreDNS's
    loadbalance)."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.records = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, name, ips):
        with self.lock:
            self.records[name.lower().rstrip(".")] = list(ips)

    def close(self):
        self.socket.close()

    def _serve(self):
        while True:
            try:
                query, peer = self.socket.recvfrom(512)
                self.socket.sendto(self._answer(query), peer)
            except (OSError, ValueError, IndexError):
                if self.socket.fileno() < 0:
                    return

    def _answer(self, query):
        labels, at = [], 12
        while query[at]:
            labels.append(query[at + 1:at + 1 + query[at]].decode().lower())
            at += 1 + query[at]
        qtype = struct.unpack("!H", query[at + 1:at + 3])[0]
        question = query[12:at + 5]
        with self.lock:
            ips = self.records.get(".".join(labels))
            if ips:
                ips.append(ips.pop(0))
                ips = list(ips)
        answers = [] if ips is None or qtype != 1 else ips
        flags = 0x8580 | (query[2] & 0x01) << 8 | (3 if ips is None else 0)  # QR AA RD RA
        header = query[:2] + struct.pack("!HHHHH", flags, 1, len(answers), 0, 0)
        records = b"".join(struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(ip)
                           for ip in answers)
        return header + question + records


class Client:
    """A TLS client that offers its newest session on every connection. With `single_use`, it
    offers each TLS 1.3 ticket once, as RFC 8446 (appendix C.4) asks and browsers and curl do:
    a connection that brought no new ticket leaves it nothing to offer next time. With
    `no_tickets`, it takes no TLS 1.2 ticket (the server gives it a session ID). With
    `server_name`, it asks for that name (SNI)."""

    def __init__(self, version, single_use=False, no_tickets=False, server_name=None):
        self.single_use = single_use
        self.server_name = server_name
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.context.minimum_version = version
        self.context.maximum_version = version
        if no_tickets:
            self.context.options |= ssl.OP_NO_TICKET
        self.session = None

    def end_with_fatal_alert(self, ip, port, timeout=5.0, before_alert=None):
        """A handshake offering the newest session, then one application record with its
        last byte flipped: the server cannot authenticate it and ends the connection with a
        fatal alert (bad_record_mac), which ends its session (RFC 5246 7.2.2). The session
        this connection ended with (for TLS 1.3, the newest ticket it brought) becomes the
        client's newest. `before_alert` (if given) runs once the session is made, before the
        record goes. Returns whether the handshake resumed."""
        with socket.create_connection((ip, port), timeout=timeout) as raw:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = self.context.wrap_bio(incoming, outgoing, server_hostname=self.server_name,
                                        session=self.session)

            def flush():
                data = outgoing.read()
                if data:
                    raw.sendall(data)

            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    data = raw.recv(65536)
                    if not data:
                        raise ConnectionError("closed during the handshake")
                    incoming.write(data)
            flush()
            resumed = tls.session_reused
            # TLS 1.3 tickets follow the handshake: read what comes for a moment.
            raw.settimeout(0.3)
            try:
                while True:
                    data = raw.recv(65536)
                    if not data:
                        break
                    incoming.write(data)
                    try:
                        tls.read(1)
                    except ssl.SSLWantReadError:
                        pass
            except socket.timeout:
                pass
            raw.settimeout(timeout)
            session = self.session = tls.session
            if before_alert is not None:
                before_alert()
            self.session = session
            tls.write(REQUEST)
            record = bytearray(outgoing.read())
            record[-1] ^= 0x01  # the last byte of the record's tag: changed for certain
            raw.sendall(bytes(record))
            try:
                while raw.recv(4096):
                    pass
            except OSError:
                pass
        return resumed

    def connect(self, ip, port, timeout=5.0):
        """One connection and request. Returns (resumed, node_line, handshake_seconds)."""
        start = time.monotonic()
        offered = self.session
        with socket.create_connection((ip, port), timeout=timeout) as raw:
            # As browsers do: without it, the request written right after the client's
            # Finished waits for a delayed ACK (40 ms) on every resumed TLS 1.2 connection.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.context.wrap_socket(raw, session=self.session,
                                          server_hostname=self.server_name) as tls:
                handshake = time.monotonic() - start
                tls.sendall(REQUEST if self.server_name is None else
                            REQUEST.replace(b"Host: farm", f"Host: {self.server_name}".encode()))
                data = b""
                while True:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                resumed = tls.session_reused
                self.session = tls.session  # the newest: TLS 1.3 tickets came with the reply
                if (self.single_use and offered is not None and tls.version() == "TLSv1.3"
                        and self.session.id == offered.id):
                    self.session = None  # no new ticket: the one offered is spent
        body = data.decode(errors="replace").split("\r\n\r\n", 1)[-1].strip()
        return resumed, body, handshake


def resumed_reconnects(client, ip, port, reconnects):
    """Connects 1 + `reconnects` times, each straight after the last; how many of the
    reconnects resumed."""
    client.connect(ip, port)
    return sum(1 for _ in range(reconnects) if client.connect(ip, port)[0])


def resumption_rate(client, ip, port, reconnects):
    """Connects 1 + `reconnects` times; the fraction of reconnects that resumed."""
    return resumed_reconnects(client, ip, port, reconnects) / reconnects


def curl_resumptions(port, version, connections=20, ip="127.0.0.1"):
    """Debian's curl, one process fetching `connections` URLs from https://ip:port with
    `Connection: close` (a new connection each, offering the session curl kept: each TLS 1.3
    ticket once). The servers name in their reply whether the session was resumed
    (tlscache-tls-server "resumed", nginx's $ssl_session_reused "r", HAProxy's
    ssl_fc_is_resumed "1"). Returns that as a string, "." full and "r" resumed, per
    connection."""
    urls = [f"https://{ip}:{port}/{i}" for i in range(connections)]
    result = subprocess.run([require("curl"), "-sSk", "--http1.1", f"--tlsv{version}",
                             "--tls-max", version, "-H", "Connection: close", "-w", "\\n",
                             *urls], capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stdout.splitlines() if line.startswith("node ")]
    if result.returncode != 0 or len(lines) != connections:
        raise AssertionError(f"curl exited with {result.returncode}: {result.stderr}\n"
                             f"{result.stdout}")
    return "".join("r" if line.split()[-1] in ("resumed", "r", "1") else "." for line in lines)


def established(ip, port):
    """How many TCP connections to the IPv4 address ip:port are established, whether the
    server's socket is IPv4 or IPv6 with the address mapped (as gRPC's are)."""
    address = socket.inet_aton(ip)[::-1].hex().upper()
    locals_ = {f"{address}:{port:04X}", f"0000000000000000FFFF0000{address}:{port:04X}"}
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            rows = [line.split() for line in f.readlines()[1:]]
        count += sum(1 for row in rows if row[1] in locals_ and row[3] == "01")
    return count


def http_get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(port):
    """{(name, frozenset(labels)): value} of every sample, through the Prometheus client
    library's own text-format parser."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # Debian's python3-prometheus-client, under another interpreter
        sys.path.append("/usr/lib/python3/dist-packages")
        from prometheus_client.parser import text_string_to_metric_families
    status, text = http_get(port, "/metrics")
    assert status == 200, status
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def plugin_stats(process):
    """Stops a tlscache-tls-server node (SIGTERM) and returns the tlscache counters its
    processes logged at exit ("pid N tlscache: {json}"), added up over its processes."""
    process.stop()
    totals = {}
    for line in process.output().splitlines():
        if "tlscache: {" not in line:
            continue
        stats = json.loads(line.split("tlscache: ", 1)[1])
        for group, counters in stats.items():
            if isinstance(counters, dict):
                for name, count in counters.items():
                    key = f"{group}.{name}"
                    totals[key] = max(totals.get(key, 0), count) if "lag" in name else \
                        totals.get(key, 0) + count
    return totals


def _resp_command(sock, *args):
    sock.sendall(b"".join([f"*{len(args)}\r\n".encode()] +
                          [f"${len(a)}\r\n".encode() + a + b"\r\n" for a in args]))


def _resp_reply(reader):
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"$":
        length = int(rest)
        return None if length < 0 else reader.read(length + 2)[:-2]
    if kind == b"*":
        return [_resp_reply(reader) for _ in range(int(rest))]
    if kind == b"-":
        raise RuntimeError(rest.decode())
    return rest


def redis_call(port, *args):
    """One command to the Redis on 127.0.0.1:port; its reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        _resp_command(sock, *args)
        return _resp_reply(sock.makefile("rb"))


def redis_values(port):
    """Every value in the Redis on 127.0.0.1:port, as bytes: strings and hash fields alike."""
    values = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")

        def call(*args):
            _resp_command(sock, *args)
            return _resp_reply(reader)

        for key in call(b"KEYS", b"*"):
            kind = call(b"TYPE", key)
            if kind == b"string":
                values.append(call(b"GET", key))
            elif kind == b"hash":
                values.extend(call(b"HVALS", key))
    return values


def offered_id(session_file):
    """The ID a client offers with the session s_client saved to `session_file`, as the cache
    keys it (hex): the TLS 1.3 ticket (a stateful ticket is the server's session ID), else the
    TLS 1.2 session ID."""
    text = subprocess.run([require("openssl"), "sess_id", "-in", session_file, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    ticket = re.search(r"TLS session ticket:\n((?:\s+[0-9a-f]{4} - .*\n)+)", text)
    if ticket:
        return "".join(re.sub(r"[^0-9a-f]", "", line.split(" - ")[1][:48])
                       for line in ticket.group(1).splitlines())
    return re.search(r"Session-ID: ([0-9A-F]+)", text).group(1).lower()


def s_client(ip, port, version, sess_out=None, sess_in=None, early_data=None):
    """openssl s_client with one request; returns its output."""
    argv = [require("openssl"), "s_client", "-connect", f"{ip}:{port}", f"-{version}",
            "-ign_eof"]
    if sess_out:
        argv += ["-sess_out", sess_out]
    if sess_in:
        argv += ["-sess_in", sess_in]
    if early_data:
        argv += ["-early_data", early_data]
    result = subprocess.run(argv, input=REQUEST, capture_output=True, timeout=30)
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
