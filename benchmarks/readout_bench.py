"""The logprob readout against one chain-of-thought sample per item, HF backend, tiny model (SYNTHETIC data).

    python benchmarks/readout_bench.py [--items 2000] [--cot-tokens 256] [--workdir DIR]

Both read the same items with the release's structured prompt. Timed: ``score`` (one forward over the shared
prefix, one batched forward of the options' tokens) and ``run`` (one sampled completion of ``--cot-tokens`` tokens;
the untrained model never stops early, as a reasoning model writing a full chain of thought would not). Printed:
wall time, tokens processed (prompt tokens + option tokens, or prompt tokens + generated tokens) and the ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--cot-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvmap_readout_bench_"))
    work.mkdir(parents=True, exist_ok=True)

    import torch

    from dvmap_verl.data import synth
    from dvmap_verl.data.prepare import prepare_wvs
    from dvmap_verl.evaluation.backends import GenerationSettings, Request
    from dvmap_verl.evaluation.backends.hf import HFBackend
    from dvmap_verl.evaluation.evaluate import load_items
    from dvmap_verl.evaluation.readouts import option_request
    from dvmap_verl.training.tiny import build_model, build_tokenizer

    torch.set_num_threads(2)
    if not (work / "data" / "stats.json").exists():
        synth.write(synth.generate(20000, seed=0), work / "wvs.csv")
        prepare_wvs(work / "wvs.csv", work / "data", quiet=True)
    if not (work / "model" / "config.json").exists():
        build_model(work / "model", build_tokenizer(work / "model"))
    items = load_items([work / "data" / "cross_country.parquet", work / "data" / "cross_value.parquet"],
                       limit=args.items)
    messages = [tuple(json.loads(m)) for m in items["messages"]]
    settings = GenerationSettings(temperature=0.7, max_tokens=args.cot_tokens, seed=0)
    backend = HFBackend(str(work / "model"), settings, batch_size=args.batch_size)
    tok = backend.tokenizer

    score_requests = [option_request(i, 0, messages[i], list(items["options"][i])) for i in range(len(items))]
    prompt_tokens = sum(len(tok(backend._prompt(r), add_special_tokens=False)["input_ids"]) for r in score_requests)
    scored: list = []
    t0 = time.perf_counter()
    backend.score(score_requests, lambda r, s: scored.append(s), lambda r, e: print("failed", r.item, e))
    t_score = time.perf_counter() - t0
    option_tokens = sum(sum(s.tokens) for s in scored)

    texts: list[str] = []
    gen_requests = [Request(i, 0, messages[i]) for i in range(len(items))]
    t0 = time.perf_counter()
    backend.run(gen_requests, lambda r, text: texts.append(text), lambda r, e: print("failed", r.item, e))
    t_cot = time.perf_counter() - t0
    generated = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)

    n = len(items)
    lp_tokens = prompt_tokens + option_tokens
    cot_tokens = prompt_tokens + generated
    print(f"{n:,} items, mean prompt {prompt_tokens / n:.0f} tokens, tiny Qwen2 on {torch.get_num_threads()} CPU "
          f"threads")
    print(f"logprob readout : {t_score:8.1f} s  {lp_tokens:>10,} tokens processed "
          f"({option_tokens / n:.1f} option tokens per item, all options scored)")
    print(f"one CoT sample  : {t_cot:8.1f} s  {cot_tokens:>10,} tokens processed "
          f"({generated / n:.0f} generated per item, batch {args.batch_size})")
    print(f"ratio (CoT / logprob): wall {t_cot / t_score:.1f}x, tokens {cot_tokens / lp_tokens:.2f}x, "
          f"generated-token steps {generated / max(n, 1):.0f} vs 0")


if __name__ == "__main__":
    main()
