#!/usr/bin/python3
"""Instructions per packet on the NIC side's forwarding thread, counted by
callgrind: dpdk-io-proxy (shm, guest in macswap) against the ceiling (one
testpmd forwarding between two net_null ports), at each frame size.

Unlike the rates of run.py, these counts do not depend on where the host
puts the two vCPUs, nor on what else the machine does: they change when the
code path changes. They say nothing about cache misses or cross-core
traffic, which is what most of the proxy's cycles go to (docs/performance.md).

The NIC side runs under valgrind (about 50 times slower), the guest natively
(so the proxy always finds full bursts, as at full load). Counting is
switched on for a window after warm-up (callgrind_control -i) and divided by
the packets sent over that window, from the guest's own counters (shm) or
the ceiling's. Each count is split by object: the proxy's own code, the
net_null stand-in NIC, DPDK's libraries, libc and the dynamic loader.

usage: bench/callgrind.py [--sizes 64,1518] [--warmup S] [--window S] [--out DIR]
Also run by bench/run.py at the end (unless --no-callgrind); the JSON goes
into its results as "callgrind".
"""
import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the harness: paths, EAL options, process helpers)

VALGRIND = ["valgrind", "--tool=callgrind", "--fair-sched=yes", "--separate-threads=yes",
            "--instr-atstart=no"]


def group(obj):
    """Which part of the stack an object file is."""
    name = Path(obj).name
    if name in ("dpdk-io-proxy", "dpdk-testpmd"):
        return "app"
    if name.startswith("librte_net_null"):
        return "net_null"
    if name.startswith("librte_"):
        return "dpdk"
    return "libc"


def parse(path):
    """Ir by object file of one callgrind profile (self cost: the cost
    lines after a calls= line are the callee's inclusive cost, skipped)."""
    names, by, ob, after_call = {}, {}, None, False
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith(("ob=", "cob=")):
            # Object names are compressed: "(id) name" once, "(id)" after,
            # in ob= and cob= lines alike.
            m = re.match(r"c?ob=(?:\((\d+)\))?\s*(.*)", line)
            if m.group(2):
                names[m.group(1)] = m.group(2)
            if line.startswith("ob="):
                ob = names.get(m.group(1), m.group(2))
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if after_call:
                after_call = False
                continue
            cost = line.split()[1:]  # position, then Ir (absent if 0)
            if cost:
                by[ob] = by.get(ob, 0) + int(cost[-1])
    return by


def counts(out_prefix):
    """(total Ir, Ir by group) of the busiest thread's profile."""
    best = (0, {})
    for f in sorted(out_prefix.parent.glob(out_prefix.name + "-*")):
        by = {}
        for obj, ir in parse(f).items():
            g = group(obj or "")
            by[g] = by.get(g, 0) + ir
        total = sum(by.values())
        if total > best[0]:
            best = (total, by)
    return best


def measure(peer, size, warmup, window):
    subprocess.run(["rm", "-rf", str(run.RUN)])
    run.RUN.mkdir(parents=True)
    out = run.RUN / "cg.out"
    vg = [*VALGRIND, f"--callgrind-out-file={out}"]
    side = guest = None
    try:
        if peer == "shm":
            cmds = run.RUN / "proxy.cmds"
            cmds.write_text(f"add port 0 queues 1\nadd socket {run.RUN}/s0/sock 0 0\n")
            side = run.start([*vg, str(run.PROXY), "--no-huge", "-m", "512", "--no-pci",
                              "--file-prefix", "bside", "--vdev", run.null_vdev("net_null0", size),
                              "--", "--cmds", str(cmds), "0"], run.RUN / "side.log")
            run.wait_for(run.RUN / "side.log", "dpdk-io-proxy ready", 120)
            guest = run.start(["dpdk-testpmd", "-d", str(run.PMDS), *run.GUEST_EAL, "--no-huge", "-m1",
                               "-a", f"sock:{run.RUN}/s0/sock", "--", "--forward-mode=macswap"],
                              run.RUN / "guest.log")
            counted, ports = guest, [0]
            tel = run.Telemetry("bguest", 60)
        else:
            # stdbuf: testpmd's log is read while it runs.
            counted = side = run.start(["stdbuf", "-oL", "-eL", *vg, "dpdk-testpmd", "-l", "0,1", "--main-lcore", "1", "--no-pci",
                                        "--no-shconf", "--no-huge", "-m", "1024", "--file-prefix", "bguest",
                                        "--vdev", run.null_vdev("net_null0", size),
                                        "--vdev", run.null_vdev("net_null1", size),
                                        "--", "--forward-mode=io"], run.RUN / "side.log")
            run.wait_for(run.RUN / "side.log", "Press enter to exit", 120)
            ports = [0, 1]
            tel = run.Telemetry("bguest", 60)
        time.sleep(warmup)
        subprocess.run(["callgrind_control", "-i", "on", str(side.pid)], capture_output=True, check=True)
        o1, _ = tel.opackets(ports)
        time.sleep(window)
        o2, _ = tel.opackets(ports)
        subprocess.run(["callgrind_control", "-i", "off", str(side.pid)], capture_output=True, check=True)
        if counted.poll() is not None:
            raise RuntimeError(f"{peer} exited early")
    finally:
        run.stop(guest)
        run.stop(side, enter=peer != "shm")
    total, by = counts(out)
    packets = o2 - o1
    if packets <= 0:
        raise RuntimeError(f"{peer} {size} B: no packets in the window")
    return {"peer": peer, "size": size, "packets": packets,
            "ir_per_packet": total / packets, "by_group": {g: v / packets for g, v in by.items()}}


def measure_all(sizes, warmup, window):
    rows = []
    for size in sizes:
        for peer in ("shm", "ceiling"):
            r = measure(peer, size, warmup, window)
            rows.append(r)
            print(f"callgrind {size:>4} B {peer:<8} {r['ir_per_packet']:7.0f} instructions/packet  "
                  + "  ".join(f"{g} {v:.0f}" for g, v in sorted(r["by_group"].items())), flush=True)
    return rows


def print_table(rows):
    print("\ninstructions per packet on the NIC side's forwarding thread (callgrind; shm: the proxy,"
          " guest in macswap; ceiling: testpmd io between two net_null ports)")
    print(f"{'size':>5} {'peer':<8} {'total':>7} {'app':>6} {'net_null':>8} {'dpdk':>6} {'libc':>6} {'/ceiling':>8}")
    for r in rows:
        ceil = next(x["ir_per_packet"] for x in rows if x["size"] == r["size"] and x["peer"] == "ceiling")
        g = r["by_group"]
        print(f"{r['size']:>5} {r['peer']:<8} {r['ir_per_packet']:7.0f} {g.get('app', 0):6.0f}"
              f" {g.get('net_null', 0):8.0f} {g.get('dpdk', 0):6.0f} {g.get('libc', 0):6.0f}"
              f" {r['ir_per_packet'] / ceil:8.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="64,1518")
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--out", default=str(run.ROOT / "bench/results"))
    a = ap.parse_args()
    if not run.PROXY.exists():
        sys.exit(f"{run.PROXY} missing: run `make build` first")
    rows = measure_all([int(s) for s in a.sizes.split(",")], a.warmup, a.window)
    print_table(rows)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"callgrind-{stamp}.json").write_text(json.dumps({"date": stamp, "callgrind": rows}, indent=1))
    print(f"\nresults: {out / f'callgrind-{stamp}.json'}")


if __name__ == "__main__":
    main()
