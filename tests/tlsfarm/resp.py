"""A minimal Redis client (RESP over a socket): what a test reads from or writes to a
redis-server behind the service."""

import socket


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
