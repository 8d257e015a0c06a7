#!/usr/bin/python3
"""Aggregate rate with 1, 2 and 4 guests, the proxy on one datapath lcore
(CPU 0) or two (CPUs 0 and 1), 64 B macswap on net_null.

Guest k is a stock testpmd on NIC queue k; every guest forwards on CPU 1
(run.py's guest placement). This machine has two vCPUs, so with two
datapath lcores the proxy's second loop shares CPU 1 with every guest:
what this shows is the cost of that sharing and that nothing serialises
the lcores, not how the rate grows on a host with a core per loop
(docs/performance.md, "Scaling").

usage: bench/scaling.py [--guests 1,2,4] [--lcores "0;0,1"] [--reps 3] [--size 64] [--out DIR]
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guests", default="1,2,4")
    ap.add_argument("--lcores", default="0;0,1")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mode", default="macswap")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=4.0)
    ap.add_argument("--out", default=str(run.ROOT / "bench/results"))
    a = ap.parse_args()
    run.build_tools()
    rows = []
    for rep in range(a.reps):
        for lcores in a.lcores.split(";"):
            for n in [int(g) for g in a.guests.split(",")]:
                run.PROXY_LCORES = lcores
                r = run.run_one("shm", a.mode, a.size, a.warmup, a.window, guests=n)
                r.update({"rep": rep, "proxy_lcores": lcores, "guests": n})
                rows.append(r)
                per = r.get("pps_per_guest", [r["pps"]])
                print(f"rep {rep} lcores {lcores:<4} guests {n}: {r['pps'] / 1e6:6.2f} Mpps"
                      f" (per guest {' '.join(f'{p / 1e6:.2f}' for p in per)}), proxy CPU {r['side_cpu']:.2f},"
                      f" guests' CPU {r['guest_cpu']:.2f}, c2c {r['c2c_rtt_ns']:.0f} ns", flush=True)
    print(f"\nmedian aggregate Mpps over {a.reps} reps, {a.size} B {a.mode}")
    print(f"{'lcores':<8}" + "".join(f"{g + ' guests':>12}" for g in a.guests.split(",")))
    for lcores in a.lcores.split(";"):
        line = f"{lcores:<8}"
        for n in [int(g) for g in a.guests.split(",")]:
            v = [r["pps"] for r in rows if r["proxy_lcores"] == lcores and r["guests"] == n]
            line += f"{statistics.median(v) / 1e6:12.2f}"
        print(line)
    run.save_results(a.out, "scaling", {"scaling": rows})

if __name__ == "__main__":
    main()
