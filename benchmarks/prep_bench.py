"""Data preparation speed on a full-size SYNTHETIC WVS file, against a bare pyarrow read of the same file.

    python benchmarks/prep_bench.py [--respondents 97220] [--columns 600] [--workdir DIR]

Each phase runs in its own process so that its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = {
    "bare_read": (
        "from pyarrow import csv; t = csv.read_csv(PATH); print(t.num_rows, t.num_columns)"
    ),
    "prepare": (
        "from dvmap_verl.data.prepare import prepare_wvs; prepare_wvs(PATH, OUT, overwrite=True, quiet=True)"
    ),
}


def run_phase(name: str, path: Path, out: Path) -> dict:
    code = (
        "import resource, time, sys\n"
        f"PATH, OUT = {str(path)!r}, {str(out)!r}\n"
        "t0 = time.perf_counter()\n"
        f"{PHASES[name]}\n"
        "dt = time.perf_counter() - t0\n"
        "print('RESULT', dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT"))
    _, seconds, rss_kb = line.split()
    return {"seconds": float(seconds), "peak_rss_mb": int(rss_kb) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--respondents", type=int, default=97220)
    ap.add_argument("--columns", type=int, default=600, help="total columns, as the real CSV (~611)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="best of N for each phase (this VM is noisy)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvmap_prep_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"synthetic_wvs_{args.respondents}x{args.columns}.csv"
    if not path.exists():
        from dvmap_verl.data import synth
        base = synth.generate(10, seed=0).shape[1]
        t0 = time.perf_counter()
        frame = synth.generate(args.respondents, seed=0, extra_columns=max(0, args.columns - base))
        synth.write(frame, path)
        print(f"generated {path.name} ({frame.shape[0]:,} x {frame.shape[1]}, "
              f"{path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s")
    results = {}
    for name in PHASES:
        runs = [run_phase(name, path, work / "out") for _ in range(args.repeat)]
        results[name] = min(runs, key=lambda r: r["seconds"])
        print(f"{name:>10}: {results[name]['seconds']:6.2f} s   peak RSS {results[name]['peak_rss_mb']:7.0f} MB")
    ratio = results["prepare"]["seconds"] / results["bare_read"]["seconds"]
    print(f"prepare / bare read = {ratio:.2f}x (goal <= 2x)")
    stats = json.loads((work / "out" / "stats.json").read_text())
    print("stage seconds:", stats.get("seconds"))
    print("rows:", {k: v["rows"] for k, v in stats["splits"].items()})


if __name__ == "__main__":
    main()
