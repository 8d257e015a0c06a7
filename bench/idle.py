#!/usr/bin/python3
"""What an idle proxy costs, and what its back-off costs the first packet.

For each `set idle` setting: the proxy's CPU time while nothing moves (a
stock testpmd guest attached, no traffic), then the round-trip time of
pings from a network namespace through a veth, net_af_packet, the proxy
and testpmd in icmpecho mode, 50 ms apart (so that every ping finds the
proxy idle, asleep if it backs off). The ping's kernel, veth and guest
parts are the same for every setting: the difference to `poll` is what the
back-off adds to the first packet after an idle period.

With --nic tap the NIC is net_tap instead (a tap in this namespace,
pinged from here), added with `intr`: an idle lcore then waits for the
tap's rx interrupt (`wait <ms>` of the setting) instead of sleeping.

usage: bench/idle.py [--settings "poll;sleep 50;sleep 100;sleep 200;sleep 500"] [--nic veth|tap] [--pings N] [--out DIR]
Needs root (a network namespace). Not part of `make test`.
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (paths, process helpers)

NS, HOST, PEER, TAP = "iopidle", "iopidle0", "iopidle1", "iopidlet"
PEER_IP, GUEST_IP = "10.199.0.1", "10.199.0.2"


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def netns_up():
    netns_down()
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", HOST, "type", "veth", "peer", "name", PEER)
    sh("ip", "link", "set", PEER, "netns", NS)
    for dev, ns in ((HOST, []), (PEER, ["ip", "netns", "exec", NS])):
        sh(*ns, "sysctl", "-q", f"net.ipv6.conf.{dev}.disable_ipv6=1")
    sh("ip", "-n", NS, "addr", "add", f"{PEER_IP}/24", "dev", PEER)
    sh("ip", "-n", NS, "link", "set", PEER, "up")
    sh("ip", "link", "set", HOST, "up")


def netns_down():
    sh("ip", "link", "del", HOST, check=False)
    sh("ip", "netns", "del", NS, check=False)


def measure(setting, pings, nic):
    subprocess.run(["rm", "-rf", str(run.RUN)])
    run.RUN.mkdir(parents=True)
    sock = run.RUN / "s0/sock"
    cmds = run.RUN / "proxy.cmds"
    tap = nic == "tap"
    intr = " intr" if tap else ""
    cmds.write_text(f"add port 0 queues 1{intr}\nadd socket {sock} 0 0\nset idle {setting}\n")
    vdev = f"net_tap0,iface={TAP}" if tap else f"net_af_packet0,iface={HOST}"
    # The tap is pinged from this namespace; the veth's peer from its own.
    at = [] if tap else ["ip", "netns", "exec", NS]
    side = guest = None
    try:
        side = run.start([str(run.PROXY), "--no-huge", "-m", "512", "--no-pci", "--file-prefix", "bside",
                          "--vdev", vdev, "--", "--cmds", str(cmds), "0"],
                         run.RUN / "side.log")
        run.wait_for(run.RUN / "side.log", "dpdk-io-proxy ready", 30)
        guest = run.start(["dpdk-testpmd", "-d", str(run.PMDS), *run.GUEST_EAL, "--no-huge", "-m1",
                           "-a", f"sock:{sock}", "--", "--forward-mode=icmpecho", "--stats-period", "60"],
                          run.RUN / "guest.log")
        run.wait_for(run.RUN / "guest.log", "forwards packets on", 60)
        if tap:
            # Once the guest is on: its attach restarts the port.
            sh("sysctl", "-q", f"net.ipv6.conf.{TAP}.disable_ipv6=1")
            sh("ip", "addr", "add", f"{PEER_IP}/24", "dev", TAP)
            sh("ip", "link", "set", TAP, "up")
        time.sleep(1.0)
        c1, t1 = run.cpu_seconds(side.pid), time.monotonic()
        time.sleep(3.0)
        idle_cpu = (run.cpu_seconds(side.pid) - c1) / (time.monotonic() - t1)
        out = sh(*at, "ping", "-n", "-q", "-c", "1", "-W", "2", GUEST_IP, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{setting}: no echo from the guest:\n{out.stdout}{out.stderr}\n"
                               + (run.RUN / "guest.log").read_text()[-2000:])
        out = sh(*at, "ping", "-n", "-c", str(pings), "-i", "0.05", GUEST_IP)
        rtts = [float(w.split("=")[1]) * 1000 for line in out.stdout.splitlines()
                for w in line.split() if w.startswith("time=")]
        if len(rtts) < pings * 0.9:
            raise RuntimeError(f"{setting}: {len(rtts)} of {pings} echoes:\n{out.stdout}")
        rtts.sort()
        return {"setting": setting, "nic": nic, "idle_cpu": idle_cpu, "pings": len(rtts),
                "rtt_us_median": statistics.median(rtts), "rtt_us_mean": statistics.fmean(rtts),
                "rtt_us_p90": rtts[int(len(rtts) * 0.9)], "rtt_us_min": rtts[0]}
    finally:
        run.stop(guest, enter=False)
        run.stop(side, enter=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", default="poll;sleep 50;sleep 100;sleep 200;sleep 500")
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--nic", choices=["veth", "tap"], default="veth")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--out", default=str(run.ROOT / "bench/results"))
    a = ap.parse_args()
    if not run.PROXY.exists():
        sys.exit(f"{run.PROXY} missing: run `make build` first")
    netns_up()
    rows = []
    try:
        for rep in range(a.reps):
            for setting in a.settings.split(";"):
                r = measure(setting.strip(), a.pings, a.nic)
                r["rep"] = rep
                rows.append(r)
                print(f"rep {rep} idle {r['setting']:<10} proxy CPU idle {r['idle_cpu'] * 100:5.1f} %   ping RTT "
                      f"median {r['rtt_us_median']:6.0f} us  mean {r['rtt_us_mean']:6.0f}  p90 {r['rtt_us_p90']:6.0f}"
                      f"  min {r['rtt_us_min']:6.0f}", flush=True)
    finally:
        netns_down()
    print("\nadded to the first packet after an idle period, against poll in the same rep (median RTT)")
    for r in rows:
        poll = next((x for x in rows if x["rep"] == r["rep"] and x["setting"] == "poll"), None)
        if poll and r is not poll:
            print(f"rep {r['rep']} {r['setting']:<10} +{r['rtt_us_median'] - poll['rtt_us_median']:5.0f} us median,"
                  f" +{r['rtt_us_mean'] - poll['rtt_us_mean']:5.0f} us mean; CPU {r['idle_cpu'] * 100:.1f} %")
    run.save_results(a.out, "idle", {"idle": rows})

if __name__ == "__main__":
    main()
