#!/usr/bin/env python3
"""A udp-echo client written from the wire facts alone (not from the Rust code).

Usage: py_client.py HOST PORT MESSAGE

Sends MESSAGE (UTF-8) as one datagram from a connected socket and expects exactly
b"Your data was N bytes" with N = len(MESSAGE in bytes), no newline. Retries on the
protocol's default schedule (waits 100, 200, 400, 800, 1600 ms). Prints the reply;
exit 0 on the right reply, 1 otherwise.
"""
import socket
import sys


def main() -> int:
    host, port, message = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    expected = b"Your data was %d bytes" % len(message)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        for wait in (0.1, 0.2, 0.4, 0.8, 1.6):
            try:
                s.send(message)
                s.settimeout(wait)
                reply = s.recv(65535)
            except socket.timeout:
                continue
            except ConnectionRefusedError:
                continue
            print(reply.decode("ascii", "replace"))
            if reply == expected:
                return 0
            print(f"expected {expected!r}, got {reply!r}", file=sys.stderr)
            return 1
    print("no reply", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
