"""Where `dvmap demo` spends its time: wall and CPU seconds of the whole command and of each of its six stages.

    python benchmarks/demo_bench.py [--respondents 20000] [--limit 60] [--workdir DIR] [--json FILE]

The demo runs as its own process (as `make demo` does); its stage times come from the `demo_summary.json` it
writes. The 1-minute load average before and after is printed beside the numbers: on a machine shared with other
work the wall time grows with the load, while the CPU seconds stay close to what an idle machine needs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_demo(out: Path, respondents: int, limit: int) -> dict:
    """Run `dvmap demo` once; wall seconds, CPU seconds (user + system, the demo and its children: Ray workers
    included) and the per-stage seconds it reports. Raises CalledProcessError if the demo fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "demo", "--out", str(out), "--respondents",
                    str(respondents), "--limit", str(limit)], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stages = json.loads((out / "demo_summary.json").read_text())["stages"]
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cores": os.cpu_count(),
            "load_1min_before": load_before, "load_1min_after": os.getloadavg()[0],
            "respondents": respondents, "limit": limit,
            "stages": [{"stage": s["stage"], "seconds": s["seconds"]} for s in stages]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--respondents", type=int, default=20000, help="as dvmap demo (its default)")
    ap.add_argument("--limit", type=int, default=60, help="as dvmap demo (its default)")
    ap.add_argument("--workdir", type=Path, help="where the demo writes (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = (args.workdir or Path(tmp)) / "demo"
        result = run_demo(out, args.respondents, args.limit)
    print(f"dvmap demo: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU on {result['cores']} cores "
          f"(load average {result['load_1min_before']:.1f} before, {result['load_1min_after']:.1f} after)")
    for s in result["stages"]:
        print(f"  {s['seconds']:7.1f} s  {s['stage']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
