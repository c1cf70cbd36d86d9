"""Data preparation speed on a full-size SYNTHETIC WVS file, against bare pyarrow reads of the same file.

    python benchmarks/prep_bench.py [--respondents 97220] [--columns 600] [--workdir DIR] [--profile]

Like for like: ``read_prepare_columns`` reads exactly the columns ``prepare`` reads (the same pyarrow CSV reader,
``include_columns``), and the goal is ``prepare <= 4x`` that read; ``bare_read`` (all ~600 columns) stays beside it.
Each phase runs in its own process so that its peak memory (max RSS) is its own; best of ``--repeat``. The load
average is printed with the figures: on a shared machine they move with it. ``--profile`` writes a cProfile of one
prepare run (``prepare.prof``) and prints its top functions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = {
    "read_prepare_columns": (
        "from pyarrow import csv; t = csv.read_csv(PATH, convert_options=csv.ConvertOptions(include_columns=COLS)); "
        "print(t.num_rows, t.num_columns)"
    ),
    "bare_read": (
        "from pyarrow import csv; t = csv.read_csv(PATH); print(t.num_rows, t.num_columns)"
    ),
    "prepare": (
        "from dvmap_verl.data.prepare import prepare_wvs; prepare_wvs(PATH, OUT, overwrite=True, quiet=True)"
    ),
}


def prepare_columns(path: Path) -> list[str]:
    """The columns ``prepare`` reads from this file (its own selection)."""
    from dvmap_verl.data.wvs import _select

    with open(path) as fh:
        names = [h.strip().strip('"') for h in fh.readline().rstrip("\r\n").split(",")]
    return list(_select(names, path).values())


def run_phase(name: str, path: Path, out: Path) -> dict:
    code = (
        "import resource, time, sys\n"
        f"PATH, OUT, COLS = {str(path)!r}, {str(out)!r}, {prepare_columns(path)!r}\n"
        "r0 = resource.getrusage(resource.RUSAGE_SELF); c0 = r0.ru_utime + r0.ru_stime\n"
        "t0 = time.perf_counter()\n"
        f"{PHASES[name]}\n"
        "dt = time.perf_counter() - t0\n"
        "u = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print('RESULT', dt, u.ru_maxrss, u.ru_utime + u.ru_stime - c0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{name} failed:\n{res.stderr[-3000:]}")
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT"))
    _, seconds, rss_kb, cpu = line.split()
    return {"seconds": float(seconds), "peak_rss_mb": int(rss_kb) / 1024, "cpu_seconds": float(cpu)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--respondents", type=int, default=97220)
    ap.add_argument("--columns", type=int, default=600, help="total columns, as the real CSV (~611)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="best of N for each phase (this VM is noisy)")
    ap.add_argument("--profile", action="store_true", help="cProfile one prepare run, print the top 25 functions")
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
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    for name in PHASES:
        runs = [run_phase(name, path, work / "out") for _ in range(args.repeat)]
        results[name] = min(runs, key=lambda r: r["seconds"])
        each = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        print(f"{name:>20}: {results[name]['seconds']:6.2f} s   CPU {results[name]['cpu_seconds']:6.2f} s   peak RSS {results[name]['peak_rss_mb']:7.0f} MB   (runs: {each})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    same = results["prepare"]["seconds"] / results["read_prepare_columns"]["seconds"]
    every = results["prepare"]["seconds"] / results["bare_read"]["seconds"]
    print(f"prepare / read of the same columns = {same:.2f}x (goal <= 4x); prepare / read of all columns = "
          f"{every:.2f}x (wall clock, best of {args.repeat})")
    cpu = results["prepare"]["cpu_seconds"] / results["read_prepare_columns"]["cpu_seconds"]
    print(f"in CPU seconds (steadier on a loaded machine): prepare / read of the same columns = {cpu:.2f}x")
    stats = json.loads((work / "out" / "stats.json").read_text())
    print("stage seconds:", stats.get("seconds"))
    print("rows:", {k: v["rows"] for k, v in stats["splits"].items()})
    if args.profile:
        import cProfile
        import pstats

        from dvmap_verl.data.prepare import prepare_wvs

        cProfile.runctx("prepare_wvs(path, work / 'out', overwrite=True, quiet=True)", globals(),
                        {"prepare_wvs": prepare_wvs, "path": path, "work": work}, str(work / "prepare.prof"))
        pstats.Stats(str(work / "prepare.prof")).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
