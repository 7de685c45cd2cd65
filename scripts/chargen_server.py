#!/usr/bin/env python3
"""A TCP server on the kernel side that sends a stream of bytes to each client.

Usage: chargen_server.py [v6] [--port 3000] [--bytes N] [--once] [--no-hash]

For each connection it reads what the client sends first (tcp_bulk_download's GET line),
sends N bytes of the chargen pattern (RFC 864 alphabet), shuts down writing, waits for the
client to close, and prints `bytes=N sha256=HEX` of what it sent.
"""
import argparse
import hashlib
import socket
import sys

CHUNK = 256 * 1024


def pattern(off, n):
    # byte i of the stream is ' ' + (i % 95), as netstack::bulk::pattern_byte
    start = off % 95
    line = bytes(32 + i for i in range(95))
    reps = (start + n) // 95 + 2
    return (line * reps)[start:start + n]


# The pattern for any offset: a CHUNK-sized run starts at `off % 95` in this buffer.
PATTERN = pattern(0, CHUNK + 95)


def serve(conn, total, hashing=True):
    conn.settimeout(2.0)
    try:
        conn.recv(65536)  # the request line, if any
    except socket.timeout:
        pass
    conn.settimeout(None)
    h = hashlib.sha256()
    sent = 0
    view = memoryview(PATTERN)
    while sent < total:
        start = sent % 95
        data = view[start:start + min(CHUNK, total - sent)]
        conn.sendall(data)
        if hashing:
            h.update(data)
        sent += len(data)
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(65536):
        pass
    conn.close()
    print(f"bytes={sent} sha256={h.hexdigest() if hashing else 'skipped'}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", choices=["v6"])
    ap.add_argument("--port", type=int, default=3000)
    ap.add_argument("--bytes", type=int, default=64 << 20)
    ap.add_argument("--once", action="store_true", help="exit after one connection")
    ap.add_argument("--no-hash", action="store_true", help="do not hash (speed runs)")
    args = ap.parse_args()
    family = socket.AF_INET6 if args.mode == "v6" else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::" if args.mode == "v6" else "0.0.0.0", args.port))
    srv.listen(16)
    print(f"chargen_server: listening on port {args.port}", file=sys.stderr, flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            serve(conn, args.bytes, not args.no_hash)
        except OSError as e:
            print(f"connection failed: {e}", file=sys.stderr, flush=True)
            if args.once:
                sys.exit(1)
        if args.once:
            return


if __name__ == "__main__":
    main()
