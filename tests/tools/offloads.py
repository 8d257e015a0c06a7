#!/usr/bin/env python3
"""Send UDP frames on IFACE and check what a forwarding guest did to them.

cksum: the frames go out with wrong IPv4 header and UDP checksums; every
frame that comes back must have both right (a tx checksum offload was
applied on the way).
vlan IN OUT: the frames go out tagged with VLAN IN (0: untagged); every
frame that comes back must carry exactly one tag, OUT (0: none).

Prints one JSON line: sent, received, good, bad.

usage: offloads.py IFACE DST_MAC COUNT cksum
       offloads.py IFACE DST_MAC COUNT vlan IN OUT
"""
import json
import socket
import struct
import sys
import threading
import time

from scapy.all import Dot1Q, Ether, IP, UDP, Raw, conf, get_if_hwaddr

conf.verb = 0
iface, dst_mac, count, mode = sys.argv[1], sys.argv[2].lower(), int(sys.argv[3]), sys.argv[4]
vid_in = int(sys.argv[5]) if mode == "vlan" else 0
vid_out = int(sys.argv[6]) if mode == "vlan" else 0
src_mac = get_if_hwaddr(iface).lower()
MAGIC = b"IOPO"
SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 0x10
PACKET_OUTGOING = 4


def frame(seq):
    l2 = Ether(src=src_mac, dst=dst_mac)
    if vid_in:
        l2 = l2 / Dot1Q(vlan=vid_in)
    ip = IP(src="10.199.0.1", dst="10.199.0.2")
    udp = UDP(sport=1000 + seq % 16, dport=2000)
    f = l2 / ip / udp / Raw(MAGIC + seq.to_bytes(4, "big") + bytes(range(48)))
    if mode == "cksum":
        f = Ether(bytes(f))
        f[IP].chksum = 0x1234
        f[UDP].chksum = 0x4321
    return bytes(f)


received = []
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
rx.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)
rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
rx.bind((iface, 0))
rx.settimeout(0.2)


def receive(stop_at):
    while time.time() < stop_at and len(received) < count:
        try:
            raw, anc, _, addr = rx.recvmsg(65535, socket.CMSG_SPACE(32))
        except socket.timeout:
            continue
        if addr[2] == PACKET_OUTGOING or MAGIC not in raw:
            continue
        tag = None
        for level, kind, data in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _, _, _, _, tci = struct.unpack("IIIHHH", data[:18])
                if status & TP_STATUS_VLAN_VALID:
                    tag = tci & 0xFFF
        received.append((raw, tag))


tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind((iface, 0))
t = threading.Thread(target=receive, args=(time.time() + 10,))
t.start()
time.sleep(0.2)
for seq in range(count):
    tx.send(frame(seq))
    time.sleep(0.002)
t.join()

good = 0
for raw, tag in received:
    if mode == "cksum":
        p = Ether(raw)
        ip_sum, udp_sum = p[IP].chksum, p[UDP].chksum
        del p[IP].chksum
        del p[UDP].chksum
        q = Ether(bytes(p))
        good += ip_sum == q[IP].chksum and udp_sum == q[UDP].chksum
    else:
        # The kernel takes the outer tag off into the auxdata: what is left
        # must be IPv4, not another tag.
        ethertype = raw[12:14]
        good += (tag or 0) == vid_out and ethertype == b"\x08\x00"
first = received[0] if received else (b"", None)
print(json.dumps({"sent": count, "received": len(received), "good": good, "bad": len(received) - good,
                  "first_tag": first[1], "first_head": first[0][:20].hex()}))
