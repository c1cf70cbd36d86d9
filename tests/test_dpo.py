"""dvmap train-dpo: DPO with LoRA (TRL + PEFT) on a tiny local model, checked with plain torch.

The loss and margins are recomputed here from the base and merged models' log-probabilities (a plain forward pass,
not TRL's logs): before training the policy is the reference, so the DPO loss is exactly ln 2; training must bring it
below that and widen the chosen-minus-rejected log-probability margin.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dvmap_verl.cli import main

BETA = 0.1
N_PAIRS = 8
TRAIN = ["--max-steps", "4", "--save-steps", "2", "--logging-steps", "1", "--batch-size", "4", "--lr", "1e-2",
         "--beta", str(BETA), "--lora-rank", "8", "--lora-alpha", "16", "--quiet"]


def _pairs(release_dev_path: Path, out: Path) -> Path:
    """8 pairs made by the project's own pairs code from the released dev split (distinct questions)."""
    from dvmap_verl.evaluation.evaluate import load_items
    from dvmap_verl.evaluation.pairs import pairs_from_items, write_pairs

    pairs = pairs_from_items(load_items([release_dev_path]))
    pairs = pairs.drop_duplicates("q_id").head(N_PAIRS).reset_index(drop=True)
    assert (pairs["chosen"] != pairs["rejected"]).all() and len(pairs) == N_PAIRS
    return write_pairs(pairs, out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, release_dev_path):
    """One `dvmap train-dpo` run (4 steps, checkpoints at 2 and 4) as a user runs it."""
    work = tmp_path_factory.mktemp("dpo")
    pairs = _pairs(release_dev_path, work / "pairs.jsonl")
    out = work / "dpo"
    # In this process (a second Python would import torch, transformers and TRL again: half a minute on 2 cores).
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["train-dpo", "--pairs", str(pairs), "--model", str(tiny_model_dir), "--out", str(out)]
                    + TRAIN) == 0
    assert stdout.getvalue().splitlines()[-1] == f"DPO: step 4 on 8 pairs, loss {_last_loss(out):.4f} at step 4; " \
                                                 f"merged model -> {out}"
    return {"pairs": pairs, "out": out, "base": tiny_model_dir}


def _last_loss(out: Path) -> float:
    history = json.loads((out / "dpo_run.json").read_text())["log_history"]
    return [h["loss"] for h in history if "loss" in h][-1]


def _answer_logps(model_dir: Path, pairs: pd.DataFrame):
    """Summed log-probability of each pair's chosen and rejected answer (+ end of turn) after the chat prompt that
    `dvmap eval-pairs` renders (thinking off), by a plain forward pass. Returns two tensors of shape (pairs,)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dvmap_verl.evaluation.pairs import pair_messages

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    out = {"chosen": [], "rejected": []}
    for row in pairs.to_dict("records"):
        context = tok.apply_chat_template(list(pair_messages(row)), tokenize=False, add_generation_prompt=True,
                                          enable_thinking=False)
        ctx = tok(context, add_special_tokens=False)["input_ids"]
        for key in out:
            answer = tok(row[key] + tok.eos_token, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([ctx + answer])
            with torch.no_grad():
                logp = model(ids).logits[0, :-1].float().log_softmax(-1)
            token_logp = logp.gather(1, ids[0, 1:, None])[:, 0]
            out[key].append(token_logp[len(ctx) - 1:].sum())
    return torch.stack(out["chosen"]), torch.stack(out["rejected"])


def _dpo_loss(policy, reference, beta: float = BETA) -> float:
    """Mean sigmoid DPO loss (Rafailov et al. 2023, eq. 7) from (chosen, rejected) summed log-probabilities."""
    import torch.nn.functional as F

    margin = (policy[0] - reference[0]) - (policy[1] - reference[1])
    return float(-F.logsigmoid(beta * margin).mean())


def test_dpo_lowers_loss_and_widens_margin(trained):
    import torch
    from safetensors.torch import load_file

    from dvmap_verl.evaluation.pairs import load_pairs

    pairs = load_pairs(trained["pairs"])
    base = _answer_logps(trained["base"], pairs)
    merged = _answer_logps(trained["out"], pairs)
    # Before training the policy is the reference: every implicit reward is 0 and the loss is -log sigmoid(0) = ln 2.
    assert _dpo_loss(base, base) == pytest.approx(math.log(2), abs=1e-7)
    after = _dpo_loss(merged, base)
    assert after < math.log(2) - 0.02, after
    margin_before = (base[0] - base[1]).mean()
    margin_after = (merged[0] - merged[1]).mean()
    assert margin_after > margin_before + 0.5, (margin_before, margin_after)
    # Most pairs now prefer the chosen answer more than the reference does.
    implicit = (merged[0] - base[0]) - (merged[1] - base[1])
    assert int((implicit > 0).sum()) >= 6, implicit
    # TRL's own first logged loss is ln 2 as well (LoRA's B starts at zero, so step 1's policy is the reference).
    record = json.loads((trained["out"] / "dpo_run.json").read_text())
    assert record["log_history"][0]["step"] == 1
    assert record["log_history"][0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert record["global_step"] == 4 and record["n_pairs"] == N_PAIRS and record["resumed_from"] is None
    # Merged: a plain model folder (no adapter files), the base's tensors by name and shape, some of them changed.
    assert not (trained["out"] / "adapter_config.json").exists()
    got, want = load_file(trained["out"] / "model.safetensors"), load_file(trained["base"] / "model.safetensors")
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in want.items()}
    changed = [k for k in want if not torch.equal(got[k], want[k])]
    assert any("q_proj" in k for k in changed) and any("down_proj" in k for k in changed)
    assert not any("embed_tokens" in k or "norm" in k for k in changed)  # LoRA touches the linear layers only


def test_merged_model_runs_in_dvmap_eval(trained, release_dev_path, tmp_path):
    run = tmp_path / "eval"
    assert main(["eval", "--backend", "hf", "--model", str(trained["out"]), "--data", str(release_dev_path),
                 "--limit", "2", "--max-tokens", "8", "--bootstrap", "0", "--out", str(run), "--quiet"]) == 0
    records = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines() if x]
    assert len(records) == 2 and sorted(r["item"] for r in records) == [0, 1]
    # eval-pairs takes the same folder: one likelihood record per training pair.
    assert main(["eval-pairs", "--backend", "hf", "--model", str(trained["out"]), "--data", str(trained["pairs"]),
                 "--readout", "likelihood", "--bootstrap", "0", "--out", str(tmp_path / "pairs"), "--quiet"]) == 0
    likelihood = (tmp_path / "pairs" / "predictions.jsonl").read_text().splitlines()
    assert len(likelihood) == N_PAIRS


def test_resume_continues_the_global_step(trained, tmp_path, capsys):
    """A run stopped after its step-2 checkpoint continues at step 3 and ends as the uninterrupted run did."""
    from safetensors.torch import load_file
    import torch

    out = tmp_path / "dpo"
    shutil.copytree(trained["out"], out)
    shutil.rmtree(out / "checkpoints" / "checkpoint-4")  # what a run killed during step 3 or 4 leaves
    for f in out.glob("model*.safetensors"):
        f.unlink()
    args = ["train-dpo", "--pairs", str(trained["pairs"]), "--model", str(trained["base"]), "--out", str(out)] + TRAIN
    assert main(args) == 2  # without --resume an existing run is refused, untouched
    assert main(args + ["--resume"]) == 0
    record = json.loads((out / "dpo_run.json").read_text())
    assert record["resumed_from"] == str(out / "checkpoints" / "checkpoint-2")
    assert record["global_step"] == 4
    assert [h["step"] for h in record["log_history"] if "loss" in h] == [1, 2, 3, 4]
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    state = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    # Same data order, optimizer and RNG state: the resumed weights are the uninterrupted run's.
    got, want = load_file(out / "model.safetensors"), load_file(trained["out"] / "model.safetensors")
    assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)
    # A resume with another learning rate, or other pairs, is refused, naming what differs.
    capsys.readouterr()
    other = [a if a != "1e-2" else "1e-3" for a in args]
    assert main(other + ["--resume"]) == 2
    assert "learning_rate: 0.01 -> 0.001" in capsys.readouterr().err
    changed = tmp_path / "changed.jsonl"
    lines = trained["pairs"].read_text().splitlines()
    changed.write_text("\n".join([lines[0].replace('"question": "', '"question": "Really? ')] + lines[1:]) + "\n")
    assert main([a if a != str(trained["pairs"]) else str(changed) for a in args] + ["--resume"]) == 2
    assert f"pairs: {changed} is not the table this run trained on ({trained['pairs']}, 8 pairs)" in \
        capsys.readouterr().err


def test_bad_pairs_are_named(tmp_path, capsys):
    def run(rows, name="pairs.jsonl", extra=()):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = tmp_path / f"out-{name}"
        code = main(["train-dpo", "--pairs", str(path), "--model", "unused", "--out", str(out), *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and not out.exists() and len(err.splitlines()) == 1, err
        return err

    good = {"question": "Q?", "chosen": "Yes", "rejected": "No"}
    err = run([{"question": "Q?", "chosen": "Yes"}], "missing.jsonl")
    assert "missing.jsonl" in err and "missing column(s) ['rejected']" in err
    assert "holds no pairs" in run([], "empty.jsonl")
    err = run([good, good, {"question": "Q2?", "chosen": "Agree", "rejected": " Agree"}], "same.jsonl")
    assert "same.jsonl: row 2: columns 'chosen' and 'rejected' hold the same answer 'Agree'" in err
    err = run([good, {"question": "Q?", "chosen": 3, "rejected": "No"}], "number.jsonl")
    assert "column 'chosen' row 1 is int 3, not text" in err
    err = run([{"q": "Q?", "good": "Yes", "bad": "No"}], "mapped.jsonl", ("--columns", "prompt=q,chosen=nope"))
    assert "--columns names column(s) ['nope']" in err


def test_column_specs_and_mapped_table(tmp_path):
    from dvmap_verl.errors import InputError
    from dvmap_verl.training.dpo import load_training_pairs, parse_column_specs

    assert parse_column_specs(["prompt=q,chosen=good", "rejected=bad"]) == {"question": "q", "chosen": "good",
                                                                            "rejected": "bad"}
    with pytest.raises(InputError, match="OURS=THEIRS"):
        parse_column_specs(["chosen"])
    path = tmp_path / "theirs.parquet"
    pd.DataFrame({"q": ["Q1?", "Q2?"], "good": ["Yes", "Agree"], "bad": ["No", "Disagree"]}).to_parquet(path)
    pairs = load_training_pairs(path, parse_column_specs(["prompt=q,chosen=good,rejected=bad"]))
    assert pairs[["question", "chosen", "rejected"]].values.tolist() == [["Q1?", "Yes", "No"],
                                                                         ["Q2?", "Agree", "Disagree"]]


def test_generation_prompt_bridge(tiny_tokenizer_dir):
    """The tiny template adds an empty thought block to the generation prompt only: it goes before each answer."""
    from transformers import AutoTokenizer

    from dvmap_verl.training.dpo import bridge_generation_prompt, conversational_rows

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    pairs = pd.DataFrame({"question": ["Q?"], "chosen": ["Yes"], "rejected": ["No"]})
    rows = conversational_rows(pairs)
    assert rows[0]["prompt"] == [{"role": "user", "content": "Question: Q?"}]
    assert bridge_generation_prompt(tok, rows) == "<think>\n\n</think>\n\n"
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "<think>\n\n</think>\n\nYes"}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": "<think>\n\n</think>\n\nNo"}]
    # A template that renders both the same (thinking on here) is left alone.
    rows = conversational_rows(pairs, enable_thinking=True)
    assert bridge_generation_prompt(tok, rows) == ""
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "Yes"}]


def test_missing_trl_is_one_line(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    code = main(["train-dpo", "--pairs", str(tmp_path / "p.jsonl"), "--model", "m", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err == "dvmap: error: dvmap train-dpo needs trl: pip install 'dvmap-verl[dpo]'\n"


def test_help_does_not_import_trl():
    code = "import sys; from dvmap_verl.cli import build_parser; build_parser(); print('trl' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "False", res.stderr


def test_readme_multi_gpu_lines_parse():
    """The README's accelerate/torchrun lines run `dvmap_verl.cli train-dpo`: its arguments parse as printed."""
    import shlex

    from dvmap_verl.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = [ln for ln in readme.splitlines() if ln.startswith(("accelerate launch ", "torchrun "))]
    assert len(lines) == 2
    for line in lines:
        words = shlex.split(line)
        args = build_parser().parse_args(words[words.index("dvmap_verl.cli") + 1:])
        assert args.command == "train-dpo" and args.pairs == Path("pairs.parquet")


def test_max_length_below_a_prompt_is_refused_before_writing(trained, tmp_path, capsys):
    """A --max-length the prompts reach: one line naming the row and the lengths (counted here with the tokenizer
    and the chat template, as eval-pairs renders them), and no --out folder left to block the corrected command."""
    from transformers import AutoTokenizer

    from dvmap_verl.evaluation.pairs import load_pairs, pair_messages

    tok = AutoTokenizer.from_pretrained(str(trained["base"]))
    lengths = [len(tok(tok.apply_chat_template(list(pair_messages(r)), tokenize=False, add_generation_prompt=True,
                                               enable_thinking=False), add_special_tokens=False)["input_ids"])
               for r in load_pairs(trained["pairs"]).to_dict("records")]
    limit = sorted(lengths)[2]  # reached by all pairs but the two shortest (ties reach it too)
    over = [i for i, n in enumerate(lengths) if n >= limit]
    out = tmp_path / "dz"
    args = ["train-dpo", "--pairs", str(trained["pairs"]), "--model", str(trained["base"]), "--out", str(out)] + TRAIN
    capsys.readouterr()
    assert main(args + ["--max-length", str(limit)]) == 2
    assert capsys.readouterr().err == (
        f"dvmap: error: --max-length {limit}: {len(over)} of 8 pair(s) in {trained['pairs']} have a prompt that long "
        f"or longer (row {over[0]}: {lengths[over[0]]} tokens; longest {max(lengths)}), which would leave no answer "
        f"token to train; raise --max-length above {max(lengths)} or shorten those questions\n")
    assert not out.exists()


def test_a_run_that_failed_before_its_first_checkpoint_does_not_block_a_new_one(tmp_path):
    from dvmap_verl.training.dpo import RUN_FILE, DPOSettings, check_out_dir

    out = tmp_path / "dz"
    (out / "checkpoints").mkdir(parents=True)
    (out / RUN_FILE).write_text(json.dumps({"settings": {"max_length": 5}, "pairs_fingerprint": "x"}))
    settings = DPOSettings(model="m", pairs="p.jsonl", out=str(out))
    assert check_out_dir(settings, resume=False, fingerprint="y") is None  # nothing trained: start afresh
    with pytest.raises(ValueError) as e:
        check_out_dir(settings, resume=True, fingerprint="y")
    assert str(e.value) == (f"--resume {out}: no checkpoint in {out / 'checkpoints'} to continue from; run without "
                            f"--resume to train from step 0 (into another --out to keep a finished model)")


def test_resume_at_or_past_max_steps_trains_nothing(trained, tmp_path, capsys):
    out = tmp_path / "dpo"
    shutil.copytree(trained["out"], out)
    before = {f.name: f.stat().st_mtime_ns for f in out.iterdir()}
    args = ["train-dpo", "--pairs", str(trained["pairs"]), "--model", str(trained["base"]), "--out", str(out)]
    one = ["--max-steps", "3"] + TRAIN[2:]  # below the step 4 reached
    capsys.readouterr()
    assert main(args + one + ["--resume"]) == 2
    assert capsys.readouterr().err == (f"dvmap: error: --resume {out}: checkpoint-4 is already at step 4, not below "
                                       f"--max-steps 3; nothing to train (raise --max-steps to continue)\n")
    assert {f.name: f.stat().st_mtime_ns for f in out.iterdir()} == before
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    # --resume where no checkpoint was ever saved: one line, not a silent restart.
    fresh = [a if a != str(out) else str(tmp_path / "fresh") for a in args]
    assert main(fresh + TRAIN + ["--resume"]) == 2
    assert "no checkpoint in" in capsys.readouterr().err and not (tmp_path / "fresh").exists()


def test_a_mistyped_model_is_one_line(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capsys.readouterr()
    assert main(["train-dpo", "--pairs", str(trained["pairs"]), "--model", str(tmp_path / "nomodel"), "--out",
                 str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dvmap: error: --model {tmp_path / 'nomodel'}: no model there (") and err.count("\n") == 1
