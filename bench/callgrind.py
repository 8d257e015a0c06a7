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

With --idle 0,15,63 it measures instead what idle sockets cost the busy
one: the proxy's instructions per packet of one busy socket (64 B macswap)
while that many more sockets are attached by guests with no traffic (stock
testpmd, io forwarding, up to 16 `sock:` ports each) on NIC queues that
receive nothing (net_ring ports of 16 queues). --proxy names another
checkout's proxy to compare (a baseline).

usage: bench/callgrind.py [--sizes 64,1518] [--warmup S] [--window S] [--out DIR]
       bench/callgrind.py --idle 0,15,63 [--proxy CHECKOUT]
Also run by bench/run.py at the end (unless --no-callgrind); the JSON goes
into its results as "callgrind".
"""
import argparse
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


IDLE_PER_GUEST = 16  # sock: ports per idle guest, queues per net_ring port


def measure(peer, size, warmup, window, idle=0, proxy=None):
    subprocess.run(["rm", "-rf", str(run.RUN)])
    run.RUN.mkdir(parents=True)
    out = run.RUN / "cg.out"
    vg = [*VALGRIND, f"--callgrind-out-file={out}"]
    side = guest = None
    idlers = []
    try:
        if peer == "shm":
            cmds = run.RUN / "proxy.cmds"
            rings = -(-idle // IDLE_PER_GUEST)
            idle_socks = [f"{run.RUN}/i{k}/sock" for k in range(idle)]
            cmds.write_text(f"add port 0 queues 1\nadd socket {run.RUN}/s0/sock 0 0\n"
                            + "".join(f"add port {1 + r} queues {IDLE_PER_GUEST}\n" for r in range(rings))
                            + "".join(f"add socket {p} {1 + k // IDLE_PER_GUEST} {k % IDLE_PER_GUEST}"
                                      " buffers 32\n" for k, p in enumerate(idle_socks)))
            rdevs = [a for r in range(rings) for a in ("--vdev", f"net_ring{r}")]
            side = run.start([*vg, str(proxy or run.PROXY), "--no-huge", "-m", "1024", "--no-pci",
                              "--file-prefix", "bside", "--vdev", run.null_vdev("net_null0", size), *rdevs,
                              "--", "--cmds", str(cmds), "0"], run.RUN / "side.log")
            run.wait_for(run.RUN / "side.log", "dpdk-io-proxy ready", 120)
            # The idle guests first, all attached before counting starts.
            # They forward on CPU 0, the proxy's: their spinning must not
            # slow the busy guest (CPU 1), and instruction counts do not
            # depend on how CPU 0 is shared.
            for g in range(rings):
                socks = idle_socks[g * IDLE_PER_GUEST:(g + 1) * IDLE_PER_GUEST]
                log = run.RUN / f"idle{g}.log"
                idlers.append(run.start(["dpdk-testpmd", "-d", str(run.PMDS), "-l", "0,1", "--main-lcore", "1",
                                         "--no-pci", "--no-shconf", "--file-prefix", f"bidle{g}",
                                         "--no-huge", "-m1", *[a for p in socks for a in ("-a", f"sock:{p}")],
                                         "--", "--forward-mode=io", "--total-num-mbufs=8192", "--stats-period", "60"], log))
                run.wait_for(log, "forwards packets on", 120)
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
        deadline = time.monotonic() + 180  # attaching is slow under valgrind
        while tel.opackets(ports)[0] == 0:
            if time.monotonic() > deadline or counted.poll() is not None:
                raise RuntimeError(f"{peer}: no packet within 180 s")
            time.sleep(0.2)
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
        for g in idlers:
            run.stop(g, enter=False)
        run.stop(side, enter=peer != "shm")
    total, by = counts(out)
    packets = o2 - o1
    if packets <= 0:
        raise RuntimeError(f"{peer} {size} B: no packets in the window")
    return {"peer": peer, "size": size, "packets": packets, "idle_sockets": idle,
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


def measure_idle(counts_, warmup, window, proxy):
    rows = []
    for n in counts_:
        r = measure("shm", 64, warmup, window, idle=n, proxy=proxy)
        rows.append(r)
        print(f"callgrind 64 B shm with {n:>2} idle sockets: {r['ir_per_packet']:7.0f} instructions/packet  "
              + "  ".join(f"{g} {v:.0f}" for g, v in sorted(r["by_group"].items())), flush=True)
    base = rows[0]["ir_per_packet"]
    print("\nthe busy socket's cost with idle sockets attached (proxy instructions per packet, 64 B macswap)")
    for r in rows:
        print(f"{r['idle_sockets']:>3} idle sockets: {r['ir_per_packet']:7.0f}  x{r['ir_per_packet'] / base:.2f}"
              f"  (+{(r['ir_per_packet'] - base) / max(r['idle_sockets'], 1):.1f} per idle socket)")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="64,1518")
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--out", default=str(run.ROOT / "bench/results"))
    ap.add_argument("--idle", help="idle socket counts, e.g. 0,15,63: the busy socket's cost with them")
    ap.add_argument("--proxy", help="a checkout whose dpdk-io-proxy to measure (default: this one)")
    a = ap.parse_args()
    proxy = Path(a.proxy) / "target/release/dpdk-io-proxy" if a.proxy else run.PROXY
    if not proxy.exists():
        sys.exit(f"{proxy} missing: run `make build` first")
    if a.idle:
        rows = measure_idle([int(n) for n in a.idle.split(",")], a.warmup, a.window, proxy)
        kind = "callgrind-idle"
    else:
        rows = measure_all([int(s) for s in a.sizes.split(",")], a.warmup, a.window)
        print_table(rows)
        kind = "callgrind"
    run.save_results(a.out, kind, {"proxy": str(proxy), kind: rows})

if __name__ == "__main__":
    main()
