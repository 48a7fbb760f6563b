#!/usr/bin/env python3
# 1,000 series (counters and decimal gauges, 100 instances) over 12 h at 15 s: OpenMetrics for promtool.
import random
random.seed(7)
start = 1795478400  # 2026-11-24T00:00Z, seconds
steps = 12 * 3600 // 15
import sys
out = open(sys.argv[1] if len(sys.argv) > 1 else "bench.om", "w")
for m in range(10):
    kind = "counter" if m % 2 == 0 else "gauge"
    name = f"bench_metric_{m}" + ("_total" if kind == "counter" else "")
    fam = name[:-6] if kind == "counter" else name
    out.write(f"# TYPE {fam} {kind}\n")
    for inst in range(100):
        v = random.random() * 1000
        lines = []
        for i in range(steps):
            if kind == "counter":
                v += random.randint(0, 50)
                val = f"{v:.0f}"
            else:
                v = max(0.0, v + random.gauss(0, 5))
                val = f"{v:.2f}"
            lines.append(f'{name}{{instance="i-{inst}",job="bench"}} {val} {start + i*15}\n')
        out.write("".join(lines))
out.write("# EOF\n")
