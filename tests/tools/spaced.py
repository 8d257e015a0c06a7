#!/usr/bin/env python3
"""Send COUNT UDP frames on IFACE one at a time, GAP_MS apart, and time
each one's return on the same interface (an app that routes them back out
of the port they came in on, such as l3fwd-power with one port).

Each frame carries a sequence number; a frame is back when a frame with
its sequence number arrives on IFACE (not one we sent). Prints one JSON
line: sent, back, and the round trips in microseconds (median, p90, max).

With FLOWS, frame k is of UDP source port 1000 + k % FLOWS (a NIC that
spreads flows over queues spreads them).

usage: spaced.py IFACE DST_MAC COUNT GAP_MS [FLOWS]
"""
import json
import socket
import statistics
import threading
import time

import sys
from scapy.all import Ether, IP, UDP, Raw, conf, get_if_hwaddr

conf.verb = 0
iface, dst_mac = sys.argv[1], sys.argv[2].lower()
count, gap = int(sys.argv[3]), float(sys.argv[4]) / 1000.0
flows = int(sys.argv[5]) if len(sys.argv) > 5 else 1
MAGIC = b"IOPS"
PACKET_OUTGOING = 4

rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
rx.bind((iface, 0))
rx.settimeout(0.2)
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind((iface, 0))
src = get_if_hwaddr(iface)

sent_at, back_at = {}, {}
done = threading.Event()


def receive():
    while not done.is_set():
        try:
            raw, addr = rx.recvfrom(65535)
        except socket.timeout:
            continue
        now = time.monotonic()
        i = raw.find(MAGIC)
        if addr[2] == PACKET_OUTGOING or i < 0:
            continue
        seq = int.from_bytes(raw[i + 4:i + 8], "big")
        back_at.setdefault(seq, now)


t = threading.Thread(target=receive)
t.start()
time.sleep(0.2)
for seq in range(count):
    f = Ether(src=src, dst=dst_mac) / IP(src="10.0.0.1", dst="10.200.0.1", ttl=64) / UDP(sport=1000 + seq % flows, dport=2000) / Raw(MAGIC + seq.to_bytes(4, "big") + bytes(32))
    b = bytes(f)
    sent_at[seq] = time.monotonic()
    tx.send(b)
    time.sleep(gap)
time.sleep(0.5)
done.set()
t.join()
rtts = sorted((back_at[s] - sent_at[s]) * 1e6 for s in back_at if s in sent_at)
out = {"sent": count, "back": len(rtts)}
if rtts:
    out.update(
        rtt_median_us=round(statistics.median(rtts)),
        rtt_p90_us=round(rtts[int(0.9 * (len(rtts) - 1))]),
        rtt_max_us=round(rtts[-1]),
    )
print(json.dumps(out))
