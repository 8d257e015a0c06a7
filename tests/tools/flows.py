#!/usr/bin/env python3
"""Send frames over many flows and sizes on IFACE, and check what comes back.

Every frame carries a sequence number and a payload derived from it. A reply
must be the same frame with source and destination MAC swapped (testpmd's
macswap). Prints one JSON line: sent, replies, matched, bad, missing.

usage: flows.py IFACE DST_MAC COUNT FLOWS [TIMEOUT_S [MIN_SIZE MAX_SIZE]]
"""
import json
import sys
import time

import socket
import threading

from scapy.all import Ether, IP, UDP, Raw, conf, get_if_hwaddr

conf.verb = 0
iface, dst_mac, count, flows = sys.argv[1], sys.argv[2].lower(), int(sys.argv[3]), int(sys.argv[4])
timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
min_size = int(sys.argv[6]) if len(sys.argv) > 6 else 60
max_size = int(sys.argv[7]) if len(sys.argv) > 7 else 1514
src_mac = get_if_hwaddr(iface).lower()
MAGIC = b"IOPX"


def payload(seq, n):
    body = bytes((seq * 7 + i) & 0xFF for i in range(max(0, n - 8)))
    return MAGIC + seq.to_bytes(4, "big") + body


frames = {}
for seq in range(count):
    flow = seq % flows
    size = min_size + (seq * 97) % (max_size - min_size + 1)  # sizes spread over the range
    hdr = Ether(src=src_mac, dst=dst_mac) / IP(src=f"10.{flow // 250}.{flow % 250}.1", dst="10.200.0.1") / UDP(sport=1000 + flow, dport=2000 + flow)
    room = size - len(hdr)
    frames[seq] = hdr / Raw(payload(seq, room))

replies = []
PACKET_OUTGOING = 4
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
rx.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE: never drop a reply
rx.bind((iface, 0))
rx.settimeout(0.2)
mine = bytes.fromhex(src_mac.replace(":", ""))


def receive(stop_at):
    while time.time() < stop_at and len(replies) < count:
        try:
            raw, addr = rx.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] != PACKET_OUTGOING and raw[0:6] == mine and MAGIC in raw:
            replies.append(raw)


tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind((iface, 0))
wire = [bytes(frames[seq]) for seq in range(count)]
t = threading.Thread(target=receive, args=(time.time() + timeout,))
t.start()
for seq, f in enumerate(wire):
    tx.send(f)
    if seq % 32 == 31:
        time.sleep(0.002)  # paced: the sender shares 2 cores with busy pollers
t.join()

matched, bad, seen = 0, 0, set()
for raw in replies:
    i = raw.find(MAGIC)
    seq = int.from_bytes(raw[i + 4:i + 8], "big")
    sent = bytes(frames.get(seq, b""))
    expected = sent[6:12] + sent[0:6] + sent[12:] if sent else None
    if expected is not None and raw[:len(expected)] == expected and seq not in seen:
        matched += 1
        seen.add(seq)
    else:
        bad += 1
print(json.dumps({"sent": count, "replies": len(replies), "matched": matched, "bad": bad, "missing": count - len(seen)}))
