"""Reward throughput: scores per second on one core, per variant, on realistic 1-2 KB chain-of-thought completions.

    python benchmarks/reward_bench.py [--n 20000]

The ``rps`` variant is timed on completions of the distribution template (one ``Option: p`` line per option).
Also times a lean extraction (regex + exact compare) as the yardstick the robust resolver is held to.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time

from dvmap_verl.reward import VARIANTS, compute_score

QUESTIONS = [
    ["Very important", "Rather important", "Not very important", "Not at all important"],
    ["Strongly agree", "Agree", "Disagree", "Strongly disagree"],
    ["Agree strongly", "Agree", "Neither agree nor disagree", "Disagree", "Disagree strongly"],
    ["Low", "Medium", "High"],
    ["Trust completely", "Trust somewhat", "Do not trust very much", "Do not trust at all"],
]
SENTENCES = [
    "As a middle-aged woman from Germany with a master's degree, she weighs personal autonomy highly.",
    "Her Roman Catholic upbringing suggests that family obligations carry moral weight in her daily life.",
    "With a middle income and full-time employment in the public sector, economic security is moderate.",
    "Being divorced with at least one child, she may value family ties while being sceptical of institutions.",
    "Older respondents in this country tend to report higher trust in neighbours than younger ones.",
    "Option analysis: the stronger options overstate her position, the weaker ones understate it.",
]
ANSWER_FORMS = ["{a}", " {a}. ", "**{a}**", "\n{a}\n", "Answer: {a}", "{a}!", "I choose {a}"]


def make_completions(n: int, seed: int = 0) -> list[tuple[str, str, list[str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        options = rng.choice(QUESTIONS)
        truth, said = rng.choice(options), rng.choice(options)
        body = []
        while sum(map(len, body)) < rng.randint(1000, 2000):
            body.append(rng.choice(SENTENCES))
        form = rng.choice(ANSWER_FORMS).format(a=said)
        text = f"<reasoning>\n{' '.join(body)}\n</reasoning>\n<answer>{form}</answer>"
        if rng.random() < 0.1:
            text = text[: rng.randint(100, len(text))]  # truncated rollouts
        out.append((text, truth, options))
    return out


def make_distribution_completions(n: int, seed: int = 0) -> list[tuple[str, str, dict]]:
    """Completions of the distribution template: the same reasoning, then one ``Option: p`` line per option (some
    in percent, some with an option left out, some truncated), with a target distribution in extra_info."""
    rng = random.Random(seed)
    out = []
    for text, truth, options in make_completions(n, seed):
        weights = [rng.random() for _ in options]
        probs = [w / sum(weights) for w in weights]
        style = rng.random()
        lines = [f"{o}: {100 * q:.0f}%" if style < 0.3 else f"{o}: {q:.2f}" for o, q in zip(options, probs)]
        if style > 0.9:
            lines.pop(rng.randrange(len(lines)))
        head = text.split("<answer>", 1)[0]
        body = head + "<answer>\n" + "\n".join(lines) + "\n</answer>"
        if rng.random() < 0.1:
            body = body[: rng.randint(100, len(body))]
        target = [rng.random() for _ in options]
        out.append((body, truth, {"options": options, "target": [x / sum(target) for x in target]}))
    return out


_LEAN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def lean(text: str, truth: str) -> float:
    found = _LEAN.findall(text)
    return float(bool(found) and found[-1].strip() == truth)


def rate(fn, items, repeat: int = 3) -> float:
    """Best of ``repeat`` passes (the usual micro-benchmark convention: the least disturbed run)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for args in items:
            fn(*args)
        best = min(best, time.perf_counter() - t0)
    return len(items) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    items = make_completions(args.n)
    mean_len = sum(len(t) for t, _, _ in items) / len(items)
    print(f"{args.n} completions, mean {mean_len:.0f} chars, single core, best of 3 passes")
    print(f"{'lean extraction (yardstick)':32s} {rate(lambda t, g, o: lean(t, g), items):>12,.0f} scores/s")
    distributions = make_distribution_completions(args.n)
    for variant in VARIANTS:
        rows = distributions if variant == "rps" else [(t, g, {"options": o, "frequency": 0.3}) for t, g, o in items]
        r = rate(lambda t, g, e: compute_score("dvmap/wvs", t, g, e, variant=variant), rows)
        print(f"{'variant ' + variant:32s} {r:>12,.0f} scores/s")
    # The yardstick for rps: the binary reward on the same multi-line distribution answers.
    r = rate(lambda t, g, e: compute_score("dvmap/wvs", t, g, e, variant="binary"), distributions)
    print(f"{'binary on the rps completions':32s} {r:>12,.0f} scores/s")


if __name__ == "__main__":
    main()
