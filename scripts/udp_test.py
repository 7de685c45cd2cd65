#!/usr/bin/env python3
"""Send datagrams of several sizes to a UDP echo server and check every echo.

Usage: udp_test.py ADDR [v6] [--port 8000] [--iface tun0] [--timeout 2]

Sizes run from 1 to 8000 bytes, so the larger ones are fragmented on a 1500-byte link.
Each echo must come back byte-for-byte within the timeout (one resend is allowed, as UDP
may lose a datagram). Exit status is 0 only if every size echoed correctly.
"""
import argparse
import os
import socket
import sys

SIZES = [1, 2, 10, 100, 512, 1000, 1400, 1472, 1473, 1500, 2000, 2960, 4000, 5000, 8000]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("addr")
    ap.add_argument("mode", nargs="?", choices=["v6"], help="use IPv6")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--iface", default="tun0", help="scope for a link-local IPv6 address")
    ap.add_argument("--timeout", type=float, default=2.0)
    args = ap.parse_args()

    v6 = args.mode == "v6" or ":" in args.addr
    addr = args.addr
    if v6 and addr.lower().startswith("fe80") and "%" not in addr:
        addr += "%" + args.iface
    family = socket.AF_INET6 if v6 else socket.AF_INET
    dest = socket.getaddrinfo(addr, args.port, family, socket.SOCK_DGRAM)[0][4]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(args.timeout)

    failures = 0
    for i, size in enumerate(SIZES):
        payload = bytes((i * 31 + j * 7) & 0xFF for j in range(size))
        ok = False
        for attempt in range(2):
            sock.sendto(payload, dest)
            try:
                while True:
                    data, _ = sock.recvfrom(65536)
                    if data == payload:
                        ok = True
                        break
                    # A late echo of an earlier attempt is skipped; anything else is wrong.
                    if len(data) != size:
                        continue
                    print(f"size {size}: echo differs from what was sent")
                    break
            except socket.timeout:
                print(f"size {size}: no echo within {args.timeout}s (attempt {attempt + 1})")
            if ok:
                break
        print(f"size {size:5d}: {'ok' if ok else 'FAILED'}")
        failures += 0 if ok else 1

    passed = len(SIZES) - failures
    print(f"{passed} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
