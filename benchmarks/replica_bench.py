"""The cost of the Ray path for `dvmap eval --replicas`: one engine in-process vs the same engine as one Ray actor,
and two actors, on CPU with the tiny local model (SYNTHETIC data).

    python benchmarks/replica_bench.py [--requests 2000] [--max-tokens 8] [--batch-size 8]

Every configuration gives each engine one torch thread, so 1 vs 2 replicas is 1 vs 2 cores. Reported: wall time,
requests/s, and the Ray path's per-request overhead as a share of one tiny-model generation (goal < 5%). Engine
start (model load, Ray start) is excluded: it is paid once per run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    from dvmap_verl.data import synth
    from dvmap_verl.data.prepare import prepare_wvs
    from dvmap_verl.evaluation.backends import GenerationSettings, Request, make_backend
    from dvmap_verl.evaluation.backends.replicas import ReplicatedBackend
    from dvmap_verl.evaluation.evaluate import load_items
    from dvmap_verl.training.tiny import build_model, build_tokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dvmap_replica_bench_"))
    synth.write(synth.generate(3000, seed=0), work / "wvs.parquet")
    prepare_wvs(work / "wvs.parquet", work / "data", quiet=True)
    build_model(work / "model", build_tokenizer(work / "model"))
    items = load_items([work / "data" / "cross_demographic.parquet"])
    msgs = [tuple(json.loads(m)) for m in items["messages"]]
    requests = [Request(i % len(msgs), i // len(msgs), msgs[i % len(msgs)]) for i in range(args.requests)]
    settings = GenerationSettings(temperature=0.0, max_tokens=args.max_tokens,
                                  chat_template_kwargs={"enable_thinking": False})
    results = {}

    def timed(name, backend):
        done = []
        t0 = time.perf_counter()
        backend.run(requests, lambda r, t: done.append(r), lambda r, e: done.append(None))
        dt = time.perf_counter() - t0
        assert len(done) == len(requests) and None not in done, name
        results[name] = dt
        print(f"{name:>26}: {dt:7.1f} s  {len(requests) / dt:7.1f} requests/s")

    torch.set_num_threads(1)
    timed("in-process, 1 engine", make_backend("hf", str(work / "model"), settings, batch_size=args.batch_size))
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    for n in (1, 2):
        backend = ReplicatedBackend("hf", str(work / "model"), settings, replicas=n, chunk=args.batch_size,
                                    batch_size=args.batch_size)
        timed(f"Ray, {n} replica(s)", backend)
        for actor in backend.actors:
            ray.kill(actor)
    ray.shutdown()
    per_request = results["in-process, 1 engine"] / len(requests)
    overhead = (results["Ray, 1 replica(s)"] - results["in-process, 1 engine"]) / len(requests)
    print(f"tiny-model generation: {per_request * 1e3:.2f} ms/request; Ray path overhead "
          f"{overhead * 1e3:+.2f} ms/request = {overhead / per_request:+.1%} (goal < 5%); "
          f"2 replicas vs 1: {results['Ray, 1 replica(s)'] / results['Ray, 2 replica(s)']:.2f}x")


if __name__ == "__main__":
    main()
