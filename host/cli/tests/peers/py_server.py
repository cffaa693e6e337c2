#!/usr/bin/env python3
"""A udp-echo server written from the wire facts alone (not from the Rust code).

Usage: py_server.py HOST [IDLE_SECONDS]

Binds HOST on a port the OS picks, prints `port N` on stdout, and answers every
datagram with b"Your data was N bytes" (N = its exact length, no newline). Exits after
IDLE_SECONDS (default 30) without traffic, so a forgotten server cannot linger.
"""
import socket
import sys


def main() -> int:
    host = sys.argv[1]
    idle = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        print(f"port {s.getsockname()[1]}", flush=True)
        s.settimeout(idle)
        while True:
            try:
                data, peer = s.recvfrom(65536)
            except socket.timeout:
                return 0
            s.sendto(b"Your data was %d bytes" % len(data), peer)


if __name__ == "__main__":
    sys.exit(main())
