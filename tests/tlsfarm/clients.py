"""TLS clients with real habits: Python's ssl module offering its newest session on every
reconnect (each TLS 1.3 ticket once), curl (session IDs only under TLS 1.2: it turns tickets
off), Go's crypto/tls (tickets only under TLS 1.2), openssl s_client; and plain HTTP for
/metrics."""

import os
import re
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from tlsfarm.supervisor import require


REQUEST = b"GET / HTTP/1.0\r\nHost: farm\r\n\r\n"


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


def offered_and_resumed(client, ip, port, connections):
    """`connections` connections; (how many offered a session, how many of those resumed).
    For a client that uses each TLS 1.3 ticket once, behind a server that renews no ticket on
    a resumption, only every other connection has one to offer."""
    offered = resumed = 0
    for _ in range(connections):
        had = client.session is not None
        reused = client.connect(ip, port)[0]
        offered += had
        resumed += had and reused
    return offered, resumed


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


def go_resumptions(port, version, connections=20, ip="127.0.0.1"):
    """Go's crypto/tls client (goclient/main.go, built with Debian's golang-go), `connections`
    connections offering the session it kept: under TLS 1.2 it resumes by ticket only.
    Returns "." full and "r" resumed, per connection."""
    source = os.path.join(os.path.dirname(__file__), "goclient", "main.go")
    scratch = os.path.join(tempfile.gettempdir(), "tlscache-go")
    env = dict(os.environ, GOCACHE=os.path.join(scratch, "cache"),
               GOPATH=os.path.join(scratch, "path"), GO111MODULE="off")
    result = subprocess.run([require("go"), "run", source, f"-addr={ip}:{port}",
                             f"-n={connections}", f"-version={version}"],
                            capture_output=True, text=True, timeout=300, env=env)
    if result.returncode != 0:
        raise AssertionError(f"the Go client exited with {result.returncode}: {result.stderr}")
    return result.stdout.strip()


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
