#!/usr/bin/env python3
"""UDP relay dropping every Nth datagram each way (deterministic), for the KCP interop check.

usage: lossy_relay.py LISTEN_PORT TARGET_PORT [N]   (127.0.0.1; N defaults to 20: 5%)
Prints the counts dropped when it receives SIGTERM.
"""
import select
import signal
import socket
import sys

listen, target = int(sys.argv[1]), int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 20
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind(("127.0.0.1", listen))
back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
back.connect(("127.0.0.1", target))
for s in (front, back):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
client = None
seen = {"up": 0, "down": 0}
dropped = {"up": 0, "down": 0}


def bye(*_):
    print(f"seen {seen} dropped {dropped}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, bye)
while True:
    r, _, _ = select.select([front, back], [], [])
    for s in r:
        if s is front:
            d, client = front.recvfrom(65536)
            seen["up"] += 1
            if seen["up"] % n == 0:
                dropped["up"] += 1
            else:
                back.send(d)
        else:
            d = back.recv(65536)
            seen["down"] += 1
            if seen["down"] % n == 0 or client is None:
                dropped["down"] += 1
            else:
                front.sendto(d, client)
