#!/usr/bin/env python3
"""Write a runbook of N steps (default 1000) for the plan benchmark: a wide DAG where each
step needs one or two earlier steps, every string templated, estimates on all steps."""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
print("version: 1\nname: bench\nobjectives: { rto: 4h }")
print("params:\n  dir: { type: path, default: /backups }\n  container: { type: string, default: db }")
print("vars:\n  stamp: \"{{ now | strftime('%Y%m%d_%H%M%S') }}\"")
print("steps:")
for i in range(n):
    needs = [] if i == 0 else sorted({(i * 7919) % i, i - 1})
    print(f"  - id: s{i}")
    print("    type: container.exec")
    print(f"    needs: [{', '.join(f's{j}' for j in needs)}]")
    print("    container: \"{{ params.container }}\"")
    print(f"    command: [pg_dump, -d, \"db{i}\", -f, \"{{{{ params.dir }}}}/{{{{ vars.stamp }}}}_{i}.dump\"]")
    print(f"    estimate: {1 + i % 17}s")
