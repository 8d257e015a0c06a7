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
print("| size | mode | peer | Mpps median | min..max | / best memif | / memif-zc | / vhost | / pipeline | / ceiling "
      "| guest RSS MiB | guest hugetlb MiB | CPU guest / NIC side | start to 1st packet |")
print("| ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
f = lambda v: "-" if v is None else f"{v:.2f}"
for s in data["summary"]:
    print(f"| {s['size']} | {s['mode']} | {s['peer']} | {s['mpps_median']:.2f} | {s['mpps_min']:.2f}..{s['mpps_max']:.2f} "
          f"| {f(s['vs_best_memif'])} | {f(s['vs_memif_zc'])} | {f(s['vs_vhost'])} | {f(s.get('vs_pipeline'))} "
          f"| {f(s['vs_ceiling'])} "
          f"| {s['guest_rss_mb']:.0f} | {s['guest_hugetlb_mb']:.0f} | {s['guest_cpu']:.2f} / {s['side_cpu']:.2f} "
          f"| {s['first_packet_s']:.2f} s |")


def table(key, intro, columns, row):
    """A table of the rows under `key`, if the results have them; columns
    are (title, alignment) pairs, row(r, rows) gives a row's cells."""
    rows = data.get(key)
    if not rows:
        return
    print(f"\n{intro}\n")
    print("| " + " | ".join(t for t, _ in columns) + " |")
    print("| " + " | ".join(a for _, a in columns) + " |")
    for r in rows:
        print("| " + " | ".join(row(r, rows)) + " |")


R, L = "---:", "---"
table("by_placement",
      "By placement: the CPU 0 <-> CPU 1 cache-line round trip (`bench/c2c.c`) right after each window;"
      " ratios to the same run's ceiling and to the best memif and vhost in the same placement.",
      [("size", R), ("mode", L), ("peer", L), ("c2c round trip", R), ("reps", R), ("Mpps median", R),
       ("/ ceiling", R), ("/ best memif", R), ("/ vhost", R)],
      lambda r, _: [str(r["size"]), r["mode"], r["peer"], r["c2c"], str(r["reps"]), f"{r['mpps_median']:.2f}",
                    f(r["vs_ceiling"]), f(r["vs_best_memif"]), f(r["vs_vhost"])])


def callgrind_row(r, rows):
    ceil = next(x["ir_per_packet"] for x in rows if x["size"] == r["size"] and x["peer"] == "ceiling")
    g = r["by_group"]
    return [str(r["size"]), r["peer"], f"{r['ir_per_packet']:.0f}"] + \
        [f"{g.get(k, 0):.0f}" for k in ("app", "net_null", "dpdk", "libc")] + [f"{r['ir_per_packet'] / ceil:.2f}"]


table("callgrind",
      "Instructions per packet on the NIC side's forwarding thread (`bench/callgrind.py`; shm: the proxy,"
      " guest in macswap; ceiling: testpmd io between two net_null ports).",
      [("size", R), ("peer", L), ("total", R), ("proxy / testpmd", R), ("net_null", R), ("DPDK libraries", R),
       ("libc, ld.so", R), ("/ ceiling", R)],
      callgrind_row)
