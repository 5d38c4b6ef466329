"""Network pieces between a farm's parts: a TCP proxy that can cut or black-hole its
connections, and a DNS server whose answers a test changes."""

import socket
import struct
import threading


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
