"""What `trainer.rollout_data_dir` costs per training step: verl's own writer on a paper-sized step.

    python benchmarks/rollout_dump_bench.py [--prompts 64] [--rollouts 8] [--steps 5]

One step at the paper's batch is 64 prompts x 8 rollouts = 512 rows; each row is what verl decodes and writes
(`RayPPOTrainer._write_generations`): the chat-templated prompt (~1.5 KB with the release's system message), the
response (~1.4 KB of structured chain of thought), the ground truth, the score and the reward's extra keys.
Reported: seconds and bytes per step (verl writes in a background thread, so the seconds overlap training), and the
disk for one epoch of the paper's corpus (56,152 prompts / 64 = 878 steps). Decoding the token ids, done by verl on
the driver before the write, is not included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from reward_bench import make_completions  # noqa: E402

PROMPT = ("<|im_start|>system\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n"
          "</answer><|im_end|>\n<|im_start|>user\n" + "You are playing the role of a Middle Adulthood Female from "
          "Germany. " * 20 + "<|im_end|>\n<|im_start|>assistant\n")


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")  # verl's notes on optional engines it does not find
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from dvmap_verl.reward import compute_score

    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    n = args.prompts * args.rollouts
    rows = make_completions(n)
    scores = [compute_score("dvmap/train", t, g, {"options": o}) for t, g, o in rows]
    extra = {k: [s[k] for s in scores] for k in ("acc", "format", "parsed", "likert")}
    work = Path(tempfile.mkdtemp(prefix="dvmap_dump_bench_"))
    times, sizes = [], []
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        RayPPOTrainer._write_generations([PROMPT] * n, [t for t, _, _ in rows], [g for _, g, _ in rows],
                                         [s["score"] for s in scores], extra, str(work), step)
        times.append(time.perf_counter() - t0)
        sizes.append((work / f"{step}.jsonl").stat().st_size)
    per_step = sum(sizes) / len(sizes)
    print(f"{n} rollouts per step ({args.prompts} prompts x {args.rollouts}), prompt {len(PROMPT):,} chars, "
          f"response mean {sum(len(t) for t, _, _ in rows) / n:,.0f} chars")
    print(f"write time per step: best {min(times):.3f} s, mean {sum(times) / len(times):.3f} s (background thread)")
    print(f"disk per step: {per_step / 2**20:.2f} MiB; one epoch of 878 steps: {878 * per_step / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
