#!/usr/bin/env python3
"""A TCP server on the kernel side that reads each client to EOF.

Usage: sink_server.py [PORT] [v6] [--once] [--no-hash]

Port 3000 by default. For each connection it prints `bytes=N sha256=HEX` of what it read,
then closes (which ends tcp_bulk_upload's wait).
"""
import argparse
import hashlib
import socket
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("args", nargs="*", help="PORT and/or v6, in any order")
    ap.add_argument("--once", action="store_true", help="exit after one connection")
    ap.add_argument("--no-hash", action="store_true", help="do not hash (speed runs)")
    a = ap.parse_intermixed_args()
    port, v6 = 3000, False
    for x in a.args:
        if x == "v6":
            v6 = True
        elif x.isdigit():
            port = int(x)
        else:
            ap.error(f"unexpected argument {x!r}")
    family = socket.AF_INET6 if v6 else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::" if v6 else "0.0.0.0", port))
    srv.listen(16)
    print(f"sink_server: listening on port {port}", file=sys.stderr, flush=True)
    while True:
        conn, _ = srv.accept()
        h = hashlib.sha256()
        n = 0
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        try:
            while True:
                k = conn.recv_into(buf)
                if not k:
                    break
                if not a.no_hash:
                    h.update(view[:k])
                n += k
        except OSError as e:
            print(f"connection failed after {n} bytes: {e}", file=sys.stderr, flush=True)
        conn.close()
        print(f"bytes={n} sha256={'skipped' if a.no_hash else h.hexdigest()}", flush=True)
        if a.once:
            return


if __name__ == "__main__":
    main()
