#!/usr/bin/python3
"""Renders a bench/run.py results file as markdown tables.

usage: bench/report.py [bench/results/latest.json]
"""
import json
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json"
data = json.load(open(path))
meta = data["meta"]
print(f"Run {meta['date']}, DPDK {meta['dpdk']}, {meta['machine']['cpus']} x {meta['machine']['cpu']}, "
      f"kernel {meta['machine']['kernel']}; {meta['args']['reps']} reps, {meta['args']['warmup']} s warm-up, "
      f"{meta['args']['window']} s window.\n")
print("| size | mode | peer | Mpps median | min..max | / best memif | / memif-zc | / vhost | / ceiling "
      "| guest RSS MiB | guest hugetlb MiB | CPU guest / NIC side | start to 1st packet |")
print("| ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
f = lambda v: "-" if v is None else f"{v:.2f}"
for s in data["summary"]:
    print(f"| {s['size']} | {s['mode']} | {s['peer']} | {s['mpps_median']:.2f} | {s['mpps_min']:.2f}..{s['mpps_max']:.2f} "
          f"| {f(s['vs_best_memif'])} | {f(s['vs_memif_zc'])} | {f(s['vs_vhost'])} | {f(s['vs_ceiling'])} "
          f"| {s['guest_rss_mb']:.0f} | {s['guest_hugetlb_mb']:.0f} | {s['guest_cpu']:.2f} / {s['side_cpu']:.2f} "
          f"| {s['first_packet_s']:.2f} s |")
rows = data.get("by_placement")
if rows:
    print("\nBy placement: the CPU 0 <-> CPU 1 cache-line round trip (`bench/c2c.c`) right after each window;"
          " ratios to the same run's ceiling and to the best memif and vhost in the same placement.\n")
    print("| size | mode | peer | c2c round trip | reps | Mpps median | / ceiling | / best memif | / vhost |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['size']} | {r['mode']} | {r['peer']} | {r['c2c']} | {r['reps']} | {r['mpps_median']:.2f} "
              f"| {f(r['vs_ceiling'])} | {f(r['vs_best_memif'])} | {f(r['vs_vhost'])} |")
rows = data.get("callgrind")
if rows:
    print("\nInstructions per packet on the NIC side's forwarding thread (`bench/callgrind.py`; shm: the proxy,"
          " guest in macswap; ceiling: testpmd io between two net_null ports).\n")
    print("| size | peer | total | proxy / testpmd | net_null | DPDK libraries | libc, ld.so | / ceiling |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        ceil = next(x["ir_per_packet"] for x in rows if x["size"] == r["size"] and x["peer"] == "ceiling")
        g = r["by_group"]
        print(f"| {r['size']} | {r['peer']} | {r['ir_per_packet']:.0f} | {g.get('app', 0):.0f} | {g.get('net_null', 0):.0f} "
              f"| {g.get('dpdk', 0):.0f} | {g.get('libc', 0):.0f} | {r['ir_per_packet'] / ceil:.2f} |")
