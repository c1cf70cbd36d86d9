"""``dvmap demo --out DIR``: the whole DVMap pipeline on a CPU, on SYNTHETIC data with an untrained tiny model.

Stages: synthetic WVS file -> ``dvmap prepare wvs`` -> compose and validate the ``dvmap_qwen3_8b`` recipe against
verl's real config (no GPU) -> score sample completions through verl's reward loop on a local Ray cluster ->
baselines and a small evaluation with the transformers backend on a tiny locally built model -> report with plots.
GRPO training itself needs GPUs; the recipe stage shows the exact command and config it would run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator, TextIO

import pandas as pd

FIXED_REPLY = "Very important"
UNTRAINED_NOTE = ("Demo: SYNTHETIC data and a tiny, untrained model (random weights) taught one fixed reply, "
                  f"<answer>{FIXED_REPLY}</answer>. That reply is an option only of the importance questions; on "
                  "every other item it names no option and counts as unparsed. The numbers exercise the pipeline "
                  "and say nothing about DVMap.")


@contextlib.contextmanager
def _library_output_to(log_path: Path) -> Iterator[TextIO]:
    """Send everything the libraries print (Ray and verl banners, worker logs, warnings), this process's and its
    children's, into ``log_path`` at the file-descriptor level; yield the console for the demo's own lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(1), "w", buffering=1)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield console
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        console.close()


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Stage:
    def __init__(self, log: list[dict], n: int, total: int, title: str, console: TextIO):
        self.log, self.n, self.total, self.title, self.console = log, n, total, title, console

    def __enter__(self):
        self.t0 = time.perf_counter()
        print(f"\n[{self.n}/{self.total}] {self.title}", file=self.console, flush=True)
        return self

    def done(self, message: str, **outputs: Any) -> None:
        dt = time.perf_counter() - self.t0
        print(f"      {message}  ({dt:.1f}s)", file=self.console, flush=True)
        for k, v in outputs.items():
            print(f"      {k}: {v}", file=self.console, flush=True)
        self.log.append({"stage": self.title, "seconds": round(dt, 1), "message": message,
                         **{k: str(v) for k, v in outputs.items()}})

    def __exit__(self, *exc):
        return False


def sample_completions(rows: list[dict]) -> list[str]:
    """Completions as models write them: right, right but sloppy, wrong, unformatted, truncated."""
    out = []
    for i, row in enumerate(rows):
        options = list(row["extra_info"]["options"])
        truth = row["reward_model"]["ground_truth"]
        wrong = options[(options.index(truth) + 1) % len(options)]
        kind = i % 5
        if kind == 0:
            out.append(f"<reasoning>\nThe profile points to this option.\n</reasoning>\n<answer>\n{truth}\n</answer>")
        elif kind == 1:
            out.append(f"<reasoning>\nLikely so.\n</reasoning>\n<answer> **{truth.upper()}**. </answer>")
        elif kind == 2:
            out.append(f"<reasoning>\nPerhaps not.\n</reasoning>\n<answer>\n{wrong}\n</answer>")
        elif kind == 3:
            out.append(f"I think the answer is {truth}.")
        else:
            out.append("<reasoning>\nThe character's income and religion")
    return out


def run_demo(out: str | Path, respondents: int = 20000, limit: int = 60, seed: int = 0) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "demo.log"
    log_file.unlink(missing_ok=True)
    print(f"DVMap demo on SYNTHETIC data -> {out} (library output: {log_file})", flush=True)
    with _library_output_to(log_file) as console:
        summary = _run_stages(out, respondents, limit, seed, console)
    print(f"\nDone in {sum(s['seconds'] for s in summary['stages']):.0f}s. {UNTRAINED_NOTE}\n"
          f"Summary: {out / 'demo_summary.json'}; library output (Ray, verl, transformers): {log_file}")
    return summary


_TOTAL = 6  # stages of the demo


def _run_stages(out: Path, respondents: int, limit: int, seed: int, console: TextIO) -> dict[str, Any]:
    log: list[dict] = []
    data = _stage_data(out, respondents, seed, log, console)
    model_dir, tokenizer, cfg = _stage_recipe(out, data, seed, log, console)
    _stage_reward(out, data, tokenizer, cfg, log, console)
    run_dir = _stage_eval(out, data, model_dir, limit, seed, log, console)
    _stage_report(run_dir, log, console)
    summary = {"out": str(out), "synthetic": True, "note": UNTRAINED_NOTE, "stages": log}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _stage_data(out: Path, respondents: int, seed: int, log: list[dict], console: TextIO) -> Path:
    """Stages 1-2: a synthetic WVS file, prepared into VeRL parquet; the prepared folder."""
    with _Stage(log, 1, _TOTAL, "Synthetic WVS Wave 7 file (dvmap synth-wvs)", console) as st:
        from dvmap_verl.data import synth
        wvs = out / "wvs_synthetic.csv"
        frame = synth.generate(respondents, seed=seed)
        synth.write(frame, wvs)
        st.done(f"{len(frame):,} synthetic respondents x {frame.shape[1]} WVS columns", file=wvs)

    with _Stage(log, 2, _TOTAL, "Archetypes, splits and VeRL parquet (dvmap prepare wvs)", console) as st:
        from dvmap_verl.data.prepare import prepare_wvs

        data = out / "data"
        stats = prepare_wvs(wvs, data, overwrite=True, quiet=True)  # the demo owns its folder
        a = stats["archetypes"]
        rows = {k: v["rows"] for k, v in stats["splits"].items()}
        st.done(f"{a['shared_profile_respondent_share']:.1%} of respondents share a profile; "
                f"{a['pairs_dropped_share']:.1%} of (profile, question) pairs dropped by H > 0; rows {rows}",
                folder=data)
    return data


def _stage_recipe(out: Path, data: Path, seed: int, log: list[dict], console: TextIO):
    """Stage 3: the tiny model and the 8B recipe composed and validated; (model folder, tokenizer, config)."""
    with _Stage(log, 3, _TOTAL, "Recipe dvmap_qwen3_8b composed and validated by verl (dry run, no GPU)",
                console) as st:
        from omegaconf import OmegaConf

        from dvmap_verl.training.dryrun import compose_ppo_config, validate_recipe
        from dvmap_verl.training.tiny import build_model, build_tokenizer

        model_dir = out / "tiny_model"
        tokenizer = build_tokenizer(model_dir)
        build_model(model_dir, tokenizer, seed=seed)
        os.environ["DVMAP_DATA_DIR"] = str(data)
        # Two reward workers: this machine has two cores (the recipe keeps verl's 8 for GPU nodes).
        cfg = compose_ppo_config(["+recipe=dvmap_qwen3_8b", f"actor_rollout_ref.model.path={model_dir}",
                                  "reward.num_workers=2"])
        checked = validate_recipe(cfg)
        composed = out / "recipe_dvmap_qwen3_8b.yaml"
        composed.write_text(OmegaConf.to_yaml(cfg))
        st.done(f"valid for {checked['gpus']} GPUs: GRPO lr {checked['lr']}, {checked['strategy']}, "
                f"{checked['rollout_n']} rollouts at T={checked['temperature']}, rollout TP {checked['tensor_parallel']}",
                config=composed,
                on_gpus=f"python -m verl.trainer.main_ppo +recipe=dvmap_qwen3_8b dvmap.data_dir={data}")
    return model_dir, tokenizer, cfg


def _stage_reward(out: Path, data: Path, tokenizer, cfg, log: list[dict], console: TextIO) -> None:
    """Stage 4: sample completions scored by verl's reward loop."""
    with _Stage(log, 4, _TOTAL, "Reward: sample completions scored by verl's reward loop on local Ray",
                console) as st:
        from dvmap_verl.training.dryrun import rollout_batch, score_on_ray

        train = pd.read_parquet(data / "train.parquet").head(20)
        rows = train.to_dict("records")
        completions = sample_completions(rows)
        prompts = [tokenizer.apply_chat_template([dict(m) for m in r["prompt"]], tokenize=False,
                                                 add_generation_prompt=True, enable_thinking=False) for r in rows]
        batch = rollout_batch(tokenizer, prompts, completions, rows)
        result = score_on_ray(cfg, batch)
        scores = result.batch["rm_scores"].sum(-1).tolist()
        table = [{"completion": c, "ground_truth": r["reward_model"]["ground_truth"], "score": round(s, 4),
                  "acc": float(result.non_tensor_batch["acc"][i]), "format": float(result.non_tensor_batch["format"][i])}
                 for i, (c, r, s) in enumerate(zip(completions, rows, scores))]
        scores_file = out / "reward_scores.json"
        scores_file.write_text(json.dumps(table, indent=1))
        mean = {k: sum(t[k] for t in table) / len(table) for k in ("score", "acc", "format")}
        st.done(f"{len(table)} completions: mean score {mean['score']:.3f}, acc {mean['acc']:.2f}, "
                f"format {mean['format']:.2f}", file=scores_file)


def _stage_eval(out: Path, data: Path, model_dir: Path, limit: int, seed: int, log: list[dict],
                console: TextIO) -> Path:
    """Stage 5: the tiny model evaluated with the hf backend; the run folder."""
    with _Stage(log, 5, _TOTAL, "Tiny model evaluated with the transformers backend (+ income flip)", console) as st:
        from dvmap_verl.evaluation.backends import make_backend
        from dvmap_verl.evaluation.evaluate import DEFAULT_FLIP, EvalConfig, run_eval
        from dvmap_verl.training.tiny import teach_fixed_reply

        # One torch thread: the tiny model's ops are too small to gain from two, and when anything else holds a
        # core, two threads spin-wait on each other (measured 2-6x slower then; one thread is steady).
        with _torch_threads(1):
            examples = pd.read_parquet(data / "train.parquet").sample(3, random_state=seed)
            teach_fixed_reply(model_dir, f"<answer>{FIXED_REPLY}</answer>",
                              prompts=[[dict(m) for m in p] for p in examples["prompt"]], steps=60, seed=seed)
            run_dir = out / "eval"
            shutil.rmtree(run_dir, ignore_errors=True)  # a rerun's model is new: its predictions must be too
            config = EvalConfig(backend="hf", model=str(model_dir),
                                data=[str(data / "cross_demographic.parquet"), str(data / "cross_value.parquet")],
                                samples=1, temperature=0.0, max_tokens=12, limit=limit, seed=seed,
                                flip_attribute=DEFAULT_FLIP[0], flip_map=DEFAULT_FLIP[1],
                                train=str(data / "train.parquet"), note=UNTRAINED_NOTE)
            status = run_eval(make_backend("hf", str(model_dir), config.generation(), batch_size=8), run_dir, config,
                              quiet=True)
        st.done(f"{status['written']} completions ({limit} items + income-flipped twins)",
                predictions=run_dir / "predictions.jsonl")
    return run_dir


def _stage_report(run_dir: Path, log: list[dict], console: TextIO) -> None:
    """Stage 6: baselines and the report."""
    with _Stage(log, 6, _TOTAL, "Baselines and report (dvmap report)", console) as st:
        from dvmap_verl.evaluation.report import build_report

        report = build_report(run_dir, bootstrap=500)
        m, b = report["model"], report["baselines"]
        items = pd.read_parquet(run_dir / "items.parquet")
        fits = int(items.loc[~items["counterfactual"], "options"].map(lambda o: FIXED_REPLY in list(o)).sum())
        st.done(f"tiny model acc {m['acc']:.3f}, unparsed {m['unparsed_rate']:.3f} (its one reply is an option of "
                f"{fits} of the {report['n_items']} items) vs baselines " +
                ", ".join(f"{k} {v['acc']:.3f}" for k, v in b.items()),
                report=run_dir / "report.md", plots=", ".join(report["plots"]))
