#!/usr/bin/env python3
"""Send frames over many flows and sizes on IFACE_IN, and check what leaves
IFACE_OUT (an app that forwards between two ports).

Every frame carries a sequence number and a payload derived from it. A
frame counts as matched when it arrives on IFACE_OUT equal to what was sent,
or, with --macs-rewritten (l2fwd, l3fwd), equal from the EtherType on.
Prints one JSON line: sent, received, matched, bad, missing.

usage: across.py IFACE_IN IFACE_OUT DST_MAC COUNT FLOWS [TIMEOUT_S] [--macs-rewritten] [--ip-forwarded]
"""
import json
import socket
import sys
import threading
import time

from scapy.all import Ether, IP, UDP, Raw, conf, get_if_hwaddr

conf.verb = 0
args = [a for a in sys.argv[1:] if not a.startswith("--")]
macs_rewritten = "--macs-rewritten" in sys.argv or "--ip-forwarded" in sys.argv
ip_forwarded = "--ip-forwarded" in sys.argv
iface_in, iface_out, dst_mac = args[0], args[1], args[2].lower()
count, flows = int(args[3]), int(args[4])
timeout = float(args[5]) if len(args) > 5 else 10.0
src_mac = get_if_hwaddr(iface_in).lower()
MAGIC = b"IOPY"


def payload(seq, n):
    body = bytes((seq * 13 + i) & 0xFF for i in range(max(0, n - 8)))
    return MAGIC + seq.to_bytes(4, "big") + body


frames = {}
for seq in range(count):
    flow = seq % flows
    size = 60 + (seq * 97) % (1514 - 60 + 1)
    hdr = Ether(src=src_mac, dst=dst_mac) / IP(src=f"10.{flow // 250}.{flow % 250}.1", dst="10.200.0.1", ttl=64) / UDP(sport=1000 + flow, dport=2000 + flow)
    frames[seq] = bytes(hdr / Raw(payload(seq, size - len(hdr))))

got = []
PACKET_OUTGOING = 4
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
rx.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
rx.bind((iface_out, 0))
rx.settimeout(0.2)


def receive(stop_at):
    while time.time() < stop_at and len(got) < count:
        try:
            raw, addr = rx.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] != PACKET_OUTGOING and MAGIC in raw:
            got.append(raw)


tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind((iface_in, 0))
t = threading.Thread(target=receive, args=(time.time() + timeout,))
t.start()
for seq in range(count):
    tx.send(frames[seq])
    if seq % 32 == 31:
        time.sleep(0.002)
t.join()


def comparable(f):
    if ip_forwarded:
        # TTL (byte 22) and the IP checksum (24, 25) change; nothing else.
        return f[12:22] + f[23:24] + f[26:]
    return f[12:] if macs_rewritten else f


matched, bad, seen = 0, 0, set()
for raw in got:
    i = raw.find(MAGIC)
    seq = int.from_bytes(raw[i + 4:i + 8], "big")
    sent = frames.get(seq)
    if sent is not None and comparable(raw[:len(sent)]) == comparable(sent) and seq not in seen:
        matched += 1
        seen.add(seq)
    else:
        bad += 1
print(json.dumps({"sent": count, "received": len(got), "matched": matched, "bad": bad, "missing": count - len(seen)}))
