#!/usr/bin/python3
"""Side-by-side benchmark: dpdk-io-proxy (shm) against memif (zero-copy and
copy), vhost-user/virtio-user, a two-core pipeline in one process, and a
one-core ceiling.

Every peer runs in the same invocation on the same two cores: the NIC side
(dpdk-io-proxy, or a stock testpmd forwarding net_null <-> memif/vhost) on
CPU 0, the guest (always stock dpdk-testpmd) forwarding on CPU 1. The "NIC"
is net_null with copy=1 (it writes every packet) and size=<frame size>.

Two references have no second process. pipeline (bench/pipeline.c, built
here against Debian's DPDK): net_null rx on CPU 0, the forwarding mode on
CPU 1, tx on CPU 0, mbuf pointers through two rte_rings; the price of
splitting the work over two cores, without any process boundary. ceiling:
one testpmd, io between two net_null ports on one core.

Rates come from the guest's own counters (its telemetry socket): opackets
over a fixed window after warm-up. Reported per configuration: median and
spread (min..max) of the repetitions, guest RSS and hugetlb memory, CPU of
both sides, time from guest start to first packet.

Right after each window, with the measured processes stopped, bench/c2c
times a cache line's round trip between the two CPUs. On a VM it tells
where the host had put the two vCPUs (same core complex, another one,
another socket), which halves or doubles every two-core peer here. A
second table groups the two-core peers' repetitions by it.

usage: bench/run.py [--reps N] [--warmup S] [--window S] [--sizes 64,1518]
                    [--modes macswap,io] [--peers shm,memif-zc,memif,vhost,pipeline,ceiling]
                    [--baseline DIR] [--guests N] [--no-callgrind]

--baseline DIR adds the peer shm-base: shm built in another checkout DIR
(after `make build` there), run interleaved with the others, to measure a
change against what it replaces in the same run.

--guests N runs N guests at once, all forwarding on CPU 1 (this machine
has two): shm serves NIC queue k to guest k, memif and vhost give guest k
its own net_null port on the NIC side. Rates are their sum (also per guest
in the JSON); pipeline and ceiling stay as with one guest.

At the end, bench/callgrind.py counts instructions per packet of the proxy
and of the ceiling (deterministic, unlike the rates); --no-callgrind skips it.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROXY = ROOT / "target/release/dpdk-io-proxy"
PMDS = ROOT / "target/pmds"
BASELINE = None  # another checkout, for the shm-base peer
RUN = Path("/tmp/iop-bench")
C2C_SRC = ROOT / "bench/c2c.c"
C2C = ROOT / "target/bench/c2c"
PIPELINE_SRC = ROOT / "bench/pipeline.c"
PIPELINE = ROOT / "target/bench/pipeline"
HZ = os.sysconf("SC_CLK_TCK")

# The same EAL options for every guest that can take them.
GUEST_EAL = ["-l", "0,1", "--no-pci", "--no-shconf", "--file-prefix", "bguest"]
# The NIC side: forwarding lcore on CPU 0, main lcore (idle) on CPU 1.
SIDE_EAL = ["-l", "0,1", "--main-lcore", "1", "--no-pci", "--file-prefix", "bside"]


# The proxy's datapath lcores (bench/scaling.py sets "0,1"); the baseline
# checkout's proxy always gets "0".
PROXY_LCORES = "0"


def save_results(out, kind, payload):
    """Writes OUT/KIND-<date>.json (payload plus its date) and says where."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"{kind}-{stamp}.json"
    path.write_text(json.dumps({"date": stamp, **payload}, indent=1))
    print(f"\nresults: {path}")
    return path


def null_vdev(name, size):
    return f"{name},copy=1,size={size}"


def guest_prefix(k):
    return "bguest" if k == 0 else f"bguest{k}"


def guest_eal(k):
    """GUEST_EAL with guest k's own file prefix (telemetry socket, hugepage files)."""
    return [*GUEST_EAL[:-1], guest_prefix(k)]


def peer_commands(peer, mode, size, guests=1):
    """(side command or None, one command per guest, counter ports of each
    guest). Guest k gets NIC queue k (shm) or its own pair of NIC side ports
    (memif, vhost); all guests forward on the same CPU."""
    ks = range(guests)
    if peer in ("shm", "shm-norecycle", "shm-base"):
        devargs = ",recycle=0" if peer == "shm-norecycle" else ""
        root = BASELINE if peer == "shm-base" else ROOT
        proxy, pmds = root / "target/release/dpdk-io-proxy", root / "target/pmds"
        cmds = RUN / "proxy.cmds"
        cmds.write_text(f"add port 0 queues {guests}\n"
                        + "".join(f"add socket {RUN}/s{k}/sock 0 {k}\n" for k in ks))
        lcores = "0" if peer == "shm-base" else PROXY_LCORES
        side = [str(proxy), "--no-pci", "--file-prefix", "bside", "--vdev", null_vdev("net_null0", size),
                "--", "--cmds", str(cmds), lcores]
        guest = [["dpdk-testpmd", "-d", str(pmds), *guest_eal(k), "--no-huge", "-m1",
                  "-a", f"sock:{RUN}/s{k}/sock{devargs}", "--", f"--forward-mode={mode}"] for k in ks]
        return side, guest, [0]
    if peer in ("memif-zc", "memif"):
        # testpmd pairs its ports in order: net_null k <-> net_memif k.
        side = ["dpdk-testpmd", *SIDE_EAL]
        for k in ks:
            side += ["--vdev", null_vdev(f"net_null{k}", size),
                     "--vdev", f"net_memif{k},role=server,socket={RUN}/memif{k}.sock"]
        side += ["--", "--forward-mode=io"]
        if peer == "memif-zc":
            mem = ["--single-file-segments"]  # zero-copy exports the guest's hugepage file
            zc = "yes"
        else:
            mem = ["--no-huge", "-m", "1024"]
            zc = "no"
        guest = [["dpdk-testpmd", *guest_eal(k), *mem,
                  "--vdev", f"net_memif0,role=client,socket={RUN}/memif{k}.sock,zero-copy={zc}",
                  "--", f"--forward-mode={mode}"] for k in ks]
        return side, guest, [0]
    if peer == "vhost":
        side = ["dpdk-testpmd", *SIDE_EAL]
        for k in ks:
            side += ["--vdev", null_vdev(f"net_null{k}", size),
                     "--vdev", f"net_vhost{k},iface={RUN}/vhost{k}.sock,queues=1"]
        side += ["--", "--forward-mode=io"]
        # Packed virtqueue, in order: virtio-user's fastest path here
        # (docs/performance.md, "vhost settings"); 22.11 defaults to split.
        guest = [["dpdk-testpmd", *guest_eal(k), "--no-huge", "-m", "1024",
                  "--vdev", f"net_virtio_user0,path={RUN}/vhost{k}.sock,queues=1,packed_vq=1,in_order=1",
                  "--", f"--forward-mode={mode}"] for k in ks]
        return side, guest, [0]
    if peer == "pipeline":
        # No second process: net_null rx on CPU 0, the mode on CPU 1 (rte_rings
        # both ways), tx on CPU 0. Not testpmd: it has no such mode.
        guest = [str(PIPELINE), *GUEST_EAL, "--vdev", null_vdev("net_null0", size), "--", mode]
        return None, [guest], [0]
    if peer == "ceiling":
        # One core's NIC rx + tx, whatever the number of guests.
        guest = ["dpdk-testpmd", "-l", "0,1", "--main-lcore", "1", "--no-pci", "--no-shconf", "--file-prefix", "bguest",
                 "--vdev", null_vdev("net_null0", size), "--vdev", null_vdev("net_null1", size),
                 "--", "--forward-mode=io"]
        return None, [guest], [0, 1]
    raise ValueError(peer)


class Telemetry:
    """A connection to a DPDK process's telemetry socket."""

    def __init__(self, prefix, timeout):
        path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                self.s.connect(path)
                self.s.recv(16384)  # greeting
                return
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def query(self, cmd):
        self.s.send(cmd.encode())
        return json.loads(self.s.recv(1 << 20).decode())

    def opackets(self, ports):
        total_o = total_i = 0
        for p in ports:
            st = self.query(f"/ethdev/stats,{p}")["/ethdev/stats"]
            if st is None:
                continue  # the port is not probed yet
            total_o += st["opackets"]
            total_i += st["ipackets"]
        return total_o, total_i


def cpu_seconds(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ


def mem_kb(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "HugetlbPages"):
            out[k] = int(v.split()[0])
    return out.get("VmRSS", 0), out.get("HugetlbPages", 0)


def start(cmd, log):
    if cmd[0] == "dpdk-testpmd":
        cmd = ["stdbuf", "-oL", "-eL", *cmd]  # its log is read while it runs
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            cwd=RUN, start_new_session=True)


def stop(p, enter=True):
    if p is None or p.poll() is not None:
        return
    try:
        if enter:
            p.stdin.write(b"\n")
            p.stdin.flush()
        else:
            p.send_signal(signal.SIGINT)
        p.wait(timeout=20)
    except Exception:
        p.kill()
        p.wait()


def wait_for(log, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in Path(log).read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"'{text}' not in {log} after {timeout}s:\n" + Path(log).read_text(errors="replace")[-3000:])


def ensure_hugepages(pages):
    """memif-zc's NIC side and each of its guests take about 350 MiB of 2 MiB
    hugepages (testpmd's default pool): reserve enough for them all, as
    scripts/setup.sh does for one."""
    path = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
    try:
        if int(path.read_text()) < pages:
            path.write_text(str(pages))
    except OSError as e:
        print(f"cannot reserve {pages} hugepages ({e}); memif-zc may not start", file=sys.stderr)


def build_tools():
    """bench/c2c, and bench/pipeline (against Debian's DPDK)."""
    def fresh(out, src):
        return out.exists() and out.stat().st_mtime >= src.stat().st_mtime

    C2C.parent.mkdir(parents=True, exist_ok=True)
    if not fresh(C2C, C2C_SRC):
        subprocess.run(["cc", "-O2", "-Wall", "-pthread", str(C2C_SRC), "-o", str(C2C)], check=True)
    if not fresh(PIPELINE, PIPELINE_SRC):
        dpdk = subprocess.run(["pkg-config", "--cflags", "--libs", "libdpdk"], capture_output=True, text=True,
                              check=True).stdout.split()
        cflags = [f for f in dpdk if not f.startswith(("-l", "-L", "-Wl"))]
        libs = [f for f in dpdk if f.startswith(("-l", "-L", "-Wl"))]
        subprocess.run(["cc", "-O3", "-Wall", *cflags, str(PIPELINE_SRC), "-o", str(PIPELINE), *libs], check=True)


def c2c_round_trip(procs):
    """Stops the processes, times CPU 0 <-> CPU 1, resumes them: ns."""
    groups = [p.pid for p in procs if p is not None and p.poll() is None]
    for g in groups:
        os.killpg(g, signal.SIGSTOP)
    try:
        out = subprocess.run([str(C2C), "0", "1", "0.4"], capture_output=True, text=True, check=True).stdout
        return float(out.split()[0])
    finally:
        for g in groups:
            os.killpg(g, signal.SIGCONT)


def run_one(peer, mode, size, warmup, window, guests=1):
    subprocess.run(["rm", "-rf", str(RUN)])
    RUN.mkdir(parents=True)
    side_cmd, guest_cmds, ports = peer_commands(peer, mode, size, guests)
    side = None
    procs = []
    try:
        if side_cmd:
            side = start(side_cmd, RUN / "side.log")
            if peer.startswith("shm"):
                wait_for(RUN / "side.log", "dpdk-io-proxy ready", 30)
            else:
                wait_for(RUN / "side.log", "Press enter to exit", 60)
        t0 = time.monotonic()
        logs = [RUN / ("guest.log" if k == 0 else f"guest{k}.log") for k in range(len(guest_cmds))]
        procs = [start(c, log) for c, log in zip(guest_cmds, logs)]
        tels = [Telemetry(guest_prefix(k), 60) for k in range(len(procs))]
        # First packet: until every guest has received one.
        first = None
        waiting = set(range(len(procs)))
        while time.monotonic() - t0 < 60:
            waiting = {k for k in waiting if tels[k].opackets(ports)[1] == 0}
            if not waiting:
                first = time.monotonic() - t0
                break
            for p, log in zip(procs, logs):
                if p.poll() is not None:
                    raise RuntimeError("guest exited:\n" + log.read_text()[-3000:])
            time.sleep(0.002)
        if first is None:
            raise RuntimeError("no packet within 60 s:\n" + logs[min(waiting)].read_text()[-3000:])
        time.sleep(warmup)
        o1 = [t.opackets(ports)[0] for t in tels]
        t1 = time.monotonic()
        c_g1 = sum(cpu_seconds(p.pid) for p in procs)
        c_s1 = cpu_seconds(side.pid) if side else 0.0
        time.sleep(window)
        o2 = [t.opackets(ports)[0] for t in tels]
        t2 = time.monotonic()
        c_g2 = sum(cpu_seconds(p.pid) for p in procs)
        c_s2 = cpu_seconds(side.pid) if side else 0.0
        mems = [mem_kb(p.pid) for p in procs]
        rtt = c2c_round_trip([*procs, side])
        per_guest = [(b - a) / (t2 - t1) for a, b in zip(o1, o2)]
        r = {
            "pps": sum(per_guest),
            # Per guest (the mean when there are several).
            "guest_rss_kb": sum(m[0] for m in mems) / len(mems),
            "guest_hugetlb_kb": sum(m[1] for m in mems) / len(mems),
            "guest_cpu": (c_g2 - c_g1) / (t2 - t1),
            "side_cpu": (c_s2 - c_s1) / (t2 - t1),
            "first_packet_s": first,
            "c2c_rtt_ns": rtt,
        }
        if len(procs) > 1:
            r["pps_per_guest"] = per_guest
        return r
    finally:
        for p in procs:
            stop(p, enter=peer != "pipeline")
        if side is not None:
            stop(side, enter=not peer.startswith("shm"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--sizes", default="64,1518")
    ap.add_argument("--modes", default="macswap,io")
    ap.add_argument("--peers", default="shm,memif-zc,memif,vhost,pipeline,ceiling")
    ap.add_argument("--out", default=str(ROOT / "bench/results"))
    ap.add_argument("--baseline", help="another checkout: adds the peer shm-base")
    ap.add_argument("--guests", type=int, default=1,
                    help="guests at once, all forwarding on CPU 1 (each its own NIC queue or NIC side ports)")
    ap.add_argument("--no-callgrind", action="store_true",
                    help="skip the instruction counts (bench/callgrind.py) at the end")
    a = ap.parse_args()
    global BASELINE
    for p in (PROXY, PMDS):
        if not p.exists():
            sys.exit(f"{p} missing: run `make build` first")
    sizes = [int(s) for s in a.sizes.split(",")]
    modes = a.modes.split(",")
    peers = a.peers.split(",")
    if a.baseline:
        BASELINE = Path(a.baseline).resolve()
        for p in (BASELINE / "target/release/dpdk-io-proxy", BASELINE / "target/pmds"):
            if not p.exists():
                sys.exit(f"{p} missing: run `make build` in {BASELINE} first")
        peers.insert(peers.index("shm") + 1 if "shm" in peers else 0, "shm-base")
    build_tools()
    ensure_hugepages(256 * (a.guests + 1))

    # One short run per peer first, thrown away: the first start of each
    # pays cold costs (hugepages zeroed, page cache, sockets) the others don't.
    for peer in peers:
        run_one(peer, modes[0] if peer != "ceiling" else "io", sizes[0], 0.5, 0.5, a.guests)

    results = []
    # Repetitions are interleaved (rep-major) so that drift of the machine
    # hits every peer alike.
    for rep in range(a.reps):
        for size in sizes:
            for mode in modes:
                for peer in peers:
                    r = run_one(peer, mode if peer != "ceiling" else "io", size, a.warmup, a.window, a.guests)
                    r.update(peer=peer, mode=mode, size=size, rep=rep)
                    results.append(r)
                    each = "".join(f" {x / 1e6:.2f}" for x in r.get("pps_per_guest", []))
                    print(f"rep {rep} {size:>4} B {mode:<8} {peer:<9} {r['pps'] / 1e6:7.2f} Mpps"
                          + (f" (per guest{each})" if each else "")
                          + f"  first packet {r['first_packet_s']:.2f}s  c2c {r['c2c_rtt_ns']:.0f} ns", flush=True)

    summary = []
    for size in sizes:
        for mode in modes:
            for peer in peers:
                rs = [r for r in results if (r["peer"], r["mode"], r["size"]) == (peer, mode, size)]
                pps = [r["pps"] for r in rs]
                summary.append({
                    "peer": peer, "mode": mode, "size": size,
                    "mpps_median": statistics.median(pps) / 1e6,
                    "mpps_min": min(pps) / 1e6, "mpps_max": max(pps) / 1e6,
                    "guest_rss_mb": statistics.median(r["guest_rss_kb"] for r in rs) / 1024,
                    "guest_hugetlb_mb": statistics.median(r["guest_hugetlb_kb"] for r in rs) / 1024,
                    "guest_cpu": statistics.median(r["guest_cpu"] for r in rs),
                    "side_cpu": statistics.median(r["side_cpu"] for r in rs),
                    "first_packet_s": statistics.median(r["first_packet_s"] for r in rs),
                    "c2c_rtt_ns": statistics.median(r["c2c_rtt_ns"] for r in rs),
                })
    for s in summary:
        same = {x["peer"]: x["mpps_median"] for x in summary if (x["mode"], x["size"]) == (s["mode"], s["size"])}
        s.update(ratios(s["mpps_median"], same, same.get("ceiling")))
    by_placement = split_by_placement(results, summary, placement_clusters([r["c2c_rtt_ns"] for r in results]))

    print_header(f"{'size':>5} {'mode':<8} {'peer':<9} {'Mpps':>7} {'spread':>15} {'/memif-zc':>9} {'/pipeline':>9}"
                 f" {'/ceiling':>8}"
                 f" {'guest RSS':>9} {'hugetlb':>8} {'cpu g/s':>9} {'1st pkt':>7}")
    for s in summary:
        print(f"{s['size']:>5} {s['mode']:<8} {s['peer']:<9} {s['mpps_median']:7.2f}"
              f" {s['mpps_min']:6.2f}..{s['mpps_max']:<6.2f} {fmt(s['vs_memif_zc']):>9} {fmt(s['vs_pipeline']):>9}"
              f" {fmt(s['vs_ceiling']):>8}"
              f" {s['guest_rss_mb']:7.0f}MB {s['guest_hugetlb_mb']:6.0f}MB"
              f" {s['guest_cpu']:4.2f}/{s['side_cpu']:4.2f} {s['first_packet_s']:6.2f}s")

    print_by_placement(by_placement)

    cg_rows = None
    if not a.no_callgrind:
        import callgrind  # it imports this module; imported late
        cg_rows = callgrind.measure_all(sizes, 4.0, 8.0)
        callgrind.print_table(cg_rows)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    meta = {
        "date": stamp,
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "kernel": os.uname().release},
        "dpdk": subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True).stdout.strip(),
        "args": vars(a),
    }
    doc = {"meta": meta, "summary": summary, "by_placement": by_placement, "runs": results}
    if cg_rows:
        doc["callgrind"] = cg_rows
    (out / f"bench-{stamp}.json").write_text(json.dumps(doc, indent=1))
    (out / "latest.json").write_text(json.dumps(doc, indent=1))
    chart(summary, results, sizes, modes, peers, out / "latest.png")
    print(f"\nresults: {out / f'bench-{stamp}.json'}, chart: {out / 'latest.png'}")


def placement_clusters(rtts):
    """Groups the round trips: sorted, split wherever one is 1.6 x the one
    before. Returns the clusters' upper bounds (the last one is inf)."""
    v = sorted(rtts)
    bounds = [(lo * hi) ** 0.5 for lo, hi in zip(v, v[1:]) if hi >= 1.6 * lo]
    return bounds + [float("inf")]


def split_by_placement(results, summary, bounds):
    """Per configuration of a two-core peer and per placement cluster:
    median Mpps and repetitions, the ratio to the same run's ceiling (one
    busy core: placement does not matter to it), and to the same cluster's
    best memif and vhost."""
    def cluster(r):
        return next(i for i, b in enumerate(bounds) if r["c2c_rtt_ns"] < b)

    # The bounds lie between measured values: no cluster is empty.
    labels = [f"~{statistics.median(r['c2c_rtt_ns'] for r in results if cluster(r) == i):.0f} ns"
              for i in range(len(bounds))]
    rows = []
    for s in summary:
        if s["peer"] == "ceiling":
            continue
        rs = [r for r in results if (r["peer"], r["mode"], r["size"]) == (s["peer"], s["mode"], s["size"])]
        for i, label in enumerate(labels):
            v = [r["pps"] / 1e6 for r in rs if cluster(r) == i]
            if v:
                rows.append({"peer": s["peer"], "mode": s["mode"], "size": s["size"], "c2c": label,
                             "reps": len(v), "mpps_median": statistics.median(v)})
    for row in rows:
        same = {x["peer"]: x["mpps_median"] for x in rows
                if (x["mode"], x["size"], x["c2c"]) == (row["mode"], row["size"], row["c2c"])}
        ceiling = next((x["mpps_median"] for x in summary
                        if (x["peer"], x["mode"], x["size"]) == ("ceiling", row["mode"], row["size"])), None)
        row.update(ratios(row["mpps_median"], same, ceiling))
    return rows


def ratios(mpps, same, ceiling):
    """A rate against its peers' (`same`: peer -> Mpps) and the ceiling."""
    memif = max(same.get("memif-zc", 0), same.get("memif", 0))
    return {
        "vs_pipeline": mpps / same["pipeline"] if same.get("pipeline") else None,
        "vs_memif_zc": mpps / same["memif-zc"] if same.get("memif-zc") else None,
        "vs_best_memif": mpps / memif if memif else None,
        "vs_vhost": mpps / same["vhost"] if same.get("vhost") else None,
        "vs_ceiling": mpps / ceiling if ceiling else None,
    }


def fmt(v):
    return f"{v:.2f}" if v is not None else "-"


def print_header(hdr):
    print()
    print(hdr)
    print("-" * len(hdr))


def print_by_placement(rows):
    print("\nby placement (c2c: CPU 0 <-> CPU 1 round trip right after each window; ratios to the same"
          " placement's peers, and to the ceiling)", end="")
    print_header(f"{'size':>5} {'mode':<8} {'peer':<9} {'c2c':>8} {'reps':>4} {'Mpps':>7}"
                 f" {'/ceiling':>8} {'/memif':>7} {'/vhost':>7}")
    for r in rows:
        print(f"{r['size']:>5} {r['mode']:<8} {r['peer']:<9} {r['c2c']:>8} {r['reps']:>4} {r['mpps_median']:7.2f}"
              f" {fmt(r['vs_ceiling']):>8} {fmt(r['vs_best_memif']):>7} {fmt(r['vs_vhost']):>7}")


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def chart(summary, results, sizes, modes, peers, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = [(s, m) for s in sizes for m in modes]
    fig, axes = plt.subplots(1, 3, figsize=(19, 4.8))
    width = 0.8 / len(peers)
    for ax, key, title in ((axes[0], "vs_memif_zc", "throughput / memif-zc"), (axes[1], "vs_ceiling", "throughput / ceiling")):
        for k, peer in enumerate(peers):
            vals = []
            for s, m in groups:
                x = next(x for x in summary if (x["peer"], x["size"], x["mode"]) == (peer, s, m))
                vals.append(x[key] or 0)
            ax.bar([g + k * width for g in range(len(groups))], vals, width, label=peer)
        ax.set_xticks([g + width * (len(peers) - 1) / 2 for g in range(len(groups))])
        ax.set_xticklabels([f"{s} B {m}" for s, m in groups])
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    # Every repetition of the first group: rate against where the host had the vCPUs.
    size, mode = groups[0]
    ax = axes[2]
    for peer in peers:
        rs = [r for r in results if (r["peer"], r["size"]) == (peer, size)
              and (r["mode"] == mode or peer == "ceiling")]
        ax.scatter([r["c2c_rtt_ns"] for r in rs], [r["pps"] / 1e6 for r in rs], label=peer, s=18)
    ax.set_xlabel("CPU 0 <-> CPU 1 cache-line round trip after the window, ns")
    ax.set_ylabel("Mpps")
    ax.set_title(f"{size} B {mode}: each repetition")
    fig.suptitle("guest = stock dpdk-testpmd; NIC = net_null copy=1; medians")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
