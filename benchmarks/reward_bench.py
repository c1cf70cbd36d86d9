"""Reward throughput: scores per second on one core, per variant, on realistic 1-2 KB chain-of-thought completions.

    python benchmarks/reward_bench.py [--n 20000]

The ``rps`` variant is timed on completions of the distribution template (one ``Option: p`` line per option), and
the binary reward on the same completions beside it. Also times a lean extraction (regex + exact compare) as the
yardstick the robust resolver is held to, and the worst of a set of pathological 4 KB completions (tag floods,
thinking floods, lists of option words, full-width text, ...) against a well-formed 4 KB one, per variant. The last
lines are the three ratios issue 20 sets goals for: binary >= 100k scores/s on the CoT completions, rps >= 0.75x
binary on the distribution completions, the worst 4 KB answer <= 25x a well-formed one.

Times are CPU seconds of this process (``time.process_time``) on one pinned core: the GIL time a rollout's reward
costs, and steady on a machine that other jobs share (wall-clock rates there fall with the load).
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
        t0 = time.process_time()
        for args in items:
            fn(*args)
        best = min(best, time.process_time() - t0)
    return len(items) / best


AGREE5 = QUESTIONS[2]
_REASONING = "<reasoning>\n" + (" ".join(SENTENCES) * 4)[:3900] + "\n</reasoning>\n"


def pathological() -> dict[str, str]:
    """4 KB completions built to be slow to read (each names no option of AGREE5, or names Agree once)."""
    r = _REASONING
    cases = {
        "one 4 KB paragraph": "<answer>" + "word " * 817 + "</answer>",
        "opening-tag flood": "<answer>" * 512,
        "empty-block flood": "<answer>x</answer>" * 227,
        "blank blocks after an answer": r[:2000] + "<answer>Agree</answer>" + "<answer> </answer>" * 110,
        "unclosed-think flood": "<think>" * 585,
        "think-span flood": "<think></think>" * 273,
        "option-word list": r[:3500] + "<answer>" + "agree disagree " * 33 + "</answer>",
        "negation list": r[:3500] + "<answer>" + "not agree strongly " * 26 + "</answer>",
        "label-number flood": r[:2500] + "<answer>" + "x 1, " * 250 + "</answer>",
        "entry flood": r[:2000] + "<answer>" + "Agree: 0.1, " * 170 + "</answer>",
        "separator flood": "<answer>" + ":" * 4000 + "</answer>",
        "full-width text": "\uff1canswer\uff1e" + "\uff21\uff47\uff52\uff45\uff45 " * 600 + "\uff1c/answer\uff1e",
        "dotted capital I": "\u0130" * 4000 + "<answer>Agree</answer>",
    }
    return {k: v[:4200] for k, v in cases.items()}


def per_call(fn, text: str, n: int = 300) -> float:
    """Best of 3 mean seconds per call."""
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            fn(text)
        best = min(best, (time.process_time() - t0) / n)
    return best


def worst_case(variant: str) -> tuple[float, str, float]:
    """(worst pathological seconds per call, its name, well-formed 4 KB seconds per call) for one variant."""
    extra = {"options": AGREE5}
    if variant == "rps":
        good = _REASONING + "<answer>\n" + "\n".join(f"{o}: {p}" for o, p in zip(AGREE5, (.1, .4, .2, .2, .1))) \
            + "\n</answer>"
    else:
        good = _REASONING + "<answer>Agree</answer>"

    def fn(text):
        return compute_score("dvmap/wvs", text, "Agree", extra, variant=variant)

    well = per_call(fn, good)
    times = {name: per_call(fn, text) for name, text in pathological().items()}
    name = max(times, key=times.get)
    return times[name], name, well


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    items = make_completions(args.n)
    mean_len = sum(len(t) for t, _, _ in items) / len(items)
    print(f"{args.n} completions, mean {mean_len:.0f} chars, single core, CPU time, best of 3 passes")
    print(f"{'lean extraction (yardstick)':32s} {rate(lambda t, g, o: lean(t, g), items):>12,.0f} scores/s")
    distributions = make_distribution_completions(args.n)
    rates = {}
    for variant in VARIANTS:
        rows = distributions if variant == "rps" else [(t, g, {"options": o, "frequency": 0.3}) for t, g, o in items]
        r = rate(lambda t, g, e: compute_score("dvmap/wvs", t, g, e, variant=variant), rows)
        rates[variant] = r
        print(f"{'variant ' + variant:32s} {r:>12,.0f} scores/s")
    # The yardstick for rps: the binary reward on the same multi-line distribution answers.
    r = rate(lambda t, g, e: compute_score("dvmap/wvs", t, g, e, variant="binary"), distributions)
    print(f"{'binary on the rps completions':32s} {r:>12,.0f} scores/s")
    rates["binary (rps completions)"] = r
    print("worst pathological 4 KB completion vs a well-formed 4 KB one, per call (best of 3):")
    ratios = {}
    for variant in ("binary", "rps"):
        worst, name, well = worst_case(variant)
        ratios[variant] = worst / well
        print(f"  {variant:6s} well-formed {1e6 * well:8.1f} us, worst {1e6 * worst:8.1f} us ({name}): "
              f"{worst / well:.1f}x")
    print("goals (issue 20):")
    print(f"  binary on CoT completions   {rates['binary']:>10,.0f} scores/s   (goal >= 100,000)")
    print(f"  rps / binary, same answers  {rates['rps'] / rates['binary (rps completions)']:>10.2f}x          "
          f"(goal >= 0.75)")
    print(f"  worst 4 KB / well-formed    {max(ratios.values()):>10.1f}x          (goal <= 25; "
          f"binary {ratios['binary']:.1f}x, rps {ratios['rps']:.1f}x)")


if __name__ == "__main__":
    main()
