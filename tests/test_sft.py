"""SFT warm start: `dvmap prepare sft` writes verl's SFT parquet, verl's own MultiTurnSFTDataset reads it under the
dvmap_qwen3_4b_sft recipe (composed and validated as verl's SFT trainer does), and the GRPO-from-SFT recipe differs
from dvmap_qwen3_4b only in its starting model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dvmap_verl.data.prompts import DISTRIBUTION_MARKER
from dvmap_verl.data.sft import prepare_sft
from dvmap_verl.errors import InputError, MissingInputError

SYSTEM = "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>"


def _row(user: str, truth, extra: dict) -> dict:
    return {"data_source": "dvmap/train", "prompt": [{"role": "system", "content": SYSTEM},
                                                     {"role": "user", "content": user}],
            "ability": "values", "reward_model": {"style": "rule", "ground_truth": truth},
            "extra_info": {"options": extra.get("options"), "target": extra.get("target"),
                           "counts": extra.get("counts")}}


def _write(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


ROWS = [
    _row("Q: agree? Options: Agree, Disagree", "Agree", {"options": ["Agree", "Disagree"]}),
    _row(f"Please {DISTRIBUTION_MARKER}. Options: Low, Medium, High", "Medium",
         {"options": ["Low", "Medium", "High"], "target": [0.25, 0.5, 0.25]}),
    _row(f"Please {DISTRIBUTION_MARKER}. Options: Low, Medium, High", "Medium",
         {"options": ["Low", "Medium", "High"], "counts": [1.0, 3.0, 0.0]}),
]
# Worked by hand: the point target's answer block; the target distribution, two decimals per option; counts
# 1, 3, 0 normalised to 0.25, 0.75, 0.
EXPECTED = ["<answer>\nAgree\n</answer>",
            "<answer>\nLow: 0.25\nMedium: 0.50\nHigh: 0.25\n</answer>",
            "<answer>\nLow: 0.25\nMedium: 0.75\nHigh: 0.00\n</answer>"]


def test_prepare_sft_writes_prompt_plus_answer_block(tmp_path):
    _write(ROWS, tmp_path / "data" / "train.parquet")
    _write(ROWS[:1], tmp_path / "data" / "val.parquet")
    assert prepare_sft(tmp_path / "data", tmp_path / "sft") == {"train": 3, "val": 1}
    sft = pd.read_parquet(tmp_path / "sft" / "train.parquet")
    assert list(sft["response"]) == EXPECTED
    for (_, row), expected in zip(sft.iterrows(), EXPECTED):
        msgs = [dict(m) for m in row["messages"]]
        assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
        assert msgs[0]["content"] == SYSTEM and msgs[2]["content"] == expected
    assert sft["data_source"].tolist() == ["dvmap/train"] * 3
    # Refuses to overwrite; with --overwrite it does.
    with pytest.raises(InputError, match="already holds train.parquet, val.parquet; add --overwrite"):
        prepare_sft(tmp_path / "data", tmp_path / "sft")
    assert prepare_sft(tmp_path / "data", tmp_path / "sft", overwrite=True)["train"] == 3


def test_prepare_sft_bad_input_is_named_and_nothing_is_written(tmp_path):
    _write(ROWS, tmp_path / "data" / "train.parquet")
    _write([_row("Q", None, {"options": ["A", "B"]})], tmp_path / "data" / "val.parquet")
    with pytest.raises(InputError, match=r"val.parquet: row 0: no reward_model.ground_truth"):
        prepare_sft(tmp_path / "data", tmp_path / "sft")
    assert not (tmp_path / "sft" / "train.parquet").exists()  # the good split is not written alone
    _write([_row(f"{DISTRIBUTION_MARKER}", "Maybe", {"options": ["Low", "High"]})], tmp_path / "d2" / "train.parquet")
    with pytest.raises(InputError, match=r"row 0: answer 'Maybe' is not one of extra_info.options \['Low', 'High'\]"):
        prepare_sft(tmp_path / "d2", tmp_path / "sft")
    pq.write_table(pa.table({"prompt": ["x"]}), tmp_path / "d3.parquet")
    (tmp_path / "d3").mkdir()
    os.replace(tmp_path / "d3.parquet", tmp_path / "d3" / "train.parquet")
    with pytest.raises(InputError, match="no column\\(s\\) reward_model, extra_info"):
        prepare_sft(tmp_path / "d3", tmp_path / "sft")
    with pytest.raises(MissingInputError, match="nowhere/train.parquet: not found"):
        prepare_sft(tmp_path / "nowhere", tmp_path / "sft")


def _sft_config(overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose("sft_trainer_engine", overrides=list(overrides))


def test_verls_sft_dataset_reads_it_under_the_recipe(synthetic_data, tiny_model_dir, tmp_path):
    from verl.trainer.sft_trainer import create_sft_dataset
    from verl.utils.config import omega_conf_to_dataclass

    data = synthetic_data()
    rows = prepare_sft(data, tmp_path / "sft")
    assert rows["train"] == len(pd.read_parquet(data / "train.parquet"))
    cfg = _sft_config(["+recipe=dvmap_qwen3_4b_sft", f"model.path={tiny_model_dir}",
                       f"dvmap.sft_data_dir={tmp_path / 'sft'}", "model.override_config.attn_implementation=sdpa"])
    # What SFTTrainer._build_config instantiates: verl's dataclasses accept every key the recipe sets.
    model = omega_conf_to_dataclass(cfg.model)
    engine = omega_conf_to_dataclass(cfg.engine)
    optim = omega_conf_to_dataclass(cfg.optim)
    omega_conf_to_dataclass(cfg.checkpoint)
    assert engine.strategy == "fsdp2" and engine.model_dtype == "fp32" and optim.lr == 5e-6
    assert optim.lr_scheduler_type == "cosine" and cfg.trainer.total_epochs == 1
    assert cfg.data.train_files == str(tmp_path / "sft" / "train.parquet")
    ds = create_sft_dataset(cfg.data.train_files, cfg.data, model.tokenizer, None)
    assert len(ds) == rows["train"]
    sft = pd.read_parquet(tmp_path / "sft" / "train.parquet")
    truth = pd.read_parquet(data / "train.parquet")["reward_model"].iloc[0]["ground_truth"]
    item = ds[0]
    tok = model.tokenizer
    # The loss covers exactly the answer block and the end-of-turn tokens; the prompt is context only.
    trained = tok.decode(item["input_ids"][item["loss_mask"].bool()])
    assert trained == f"<answer>\n{truth}\n</answer><|im_end|>\n" == sft["response"].iloc[0] + "<|im_end|>\n"
    whole = tok.apply_chat_template([dict(m) for m in sft["messages"].iloc[0]], tokenize=False)
    assert tok.decode(item["input_ids"]) == whole
    # Why the recipe passes no enable_thinking: verl masks len(generation prompt) tokens of the assistant turn, and
    # with thinking off that prompt has the empty <think></think> block the lone turn lacks: the answer is lost.
    off = _sft_config(["+recipe=dvmap_qwen3_4b_sft", f"model.path={tiny_model_dir}",
                       f"dvmap.sft_data_dir={tmp_path / 'sft'}", "+data.apply_chat_template_kwargs.enable_thinking=false"])
    item = create_sft_dataset(off.data.train_files, off.data, tok, None, max_samples=1)[0]
    assert tok.decode(item["input_ids"][item["loss_mask"].bool()]) == "<|im_end|>\n"


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_grpo_from_sft_changes_only_the_starting_model(monkeypatch):
    from omegaconf import OmegaConf

    from dvmap_verl.training.dryrun import compose_ppo_config, validate_recipe

    monkeypatch.delenv("DVMAP_SFT_MODEL", raising=False)
    base = _flat(OmegaConf.to_container(compose_ppo_config(["+recipe=dvmap_qwen3_4b"]), resolve=True))
    cfg = compose_ppo_config(["+recipe=dvmap_qwen3_4b_from_sft"])
    validate_recipe(cfg)
    mine = _flat(OmegaConf.to_container(cfg, resolve=True))
    changed = {k for k in base.keys() | mine.keys() if base.get(k) != mine.get(k)}
    derived = {"trainer.default_local_dir", "trainer.rollout_data_dir"}
    changed = {k for k in changed if k not in derived and not k.endswith("experiment_name")}
    # The model path reaches every place verl reads it from (actor, rollout, the trace's served name).
    assert changed == {"dvmap.sft_model", "actor_rollout_ref.model.path",
                       *{k for k in changed if mine.get(k) == "merged/qwen3_4b_sft"}}, changed
    assert all(mine[k] == "merged/qwen3_4b_sft" for k in changed)
    assert mine["actor_rollout_ref.actor.optim.lr"] == 5e-6 and mine["actor_rollout_ref.rollout.n"] == 8
    cfg = compose_ppo_config(["+recipe=dvmap_qwen3_4b_from_sft", "dvmap.sft_model=/m/sft"])
    assert cfg.actor_rollout_ref.model.path == "/m/sft"


def test_prepare_sft_cli(tmp_path):
    _write(ROWS, tmp_path / "data" / "train.parquet")
    cli = [sys.executable, "-m", "dvmap_verl.cli", "prepare", "sft"]
    res = subprocess.run(cli + ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "sft")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f" train:       3 SFT rows -> {tmp_path / 'sft' / 'train.parquet'}" in res.stdout
    bad = subprocess.run(cli + ["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "none/train.parquet: not found" in bad.stderr


def test_readme_sft_trainer_commands_compose():
    """The `python -m verl.trainer.sft_trainer` lines of the READMEs compose with verl's SFT config and the recipe
    (test_readme_commands checks main_ppo lines; this is the SFT trainer's)."""
    import re
    import shlex

    repo = Path(__file__).resolve().parents[1]
    lines = [line.split("#")[0] for doc in ("README.md", "recipes/README.md")
             for line in (repo / doc).read_text().splitlines() if "python -m verl.trainer.sft_trainer" in line]
    commands = [shlex.split(re.sub(r"^.*?python -m verl.trainer.sft_trainer", "", line).strip(" `"))
                for line in lines if line.strip().startswith("python -m")]
    assert commands, "the recipes README shows the SFT command"
    for overrides in commands:
        cfg = _sft_config(overrides)
        assert cfg.trainer.experiment_name == "dvmap_qwen3_4b_sft" and cfg.data.messages_key == "messages"


def test_prepare_sft_never_replaces_a_prepared_sets_files(tmp_path):
    """`--out` = `--data`, or a copy of a prepared folder (its manifest lists train/val.parquet): refused even with
    --overwrite, the prepared files untouched."""
    import json

    _write(ROWS, tmp_path / "data" / "train.parquet")
    before = (tmp_path / "data" / "train.parquet").read_bytes()
    with pytest.raises(InputError) as e:
        prepare_sft(tmp_path / "data", tmp_path / "data", overwrite=True)
    assert str(e.value) == (f"--out {tmp_path / 'data'} is the --data folder: the SFT files would replace its "
                            f"prepared train/val parquet; write the SFT set to another folder")
    copy = tmp_path / "copy"
    _write(ROWS, copy / "train.parquet")
    (copy / ".dvmap-manifest.json").write_text(json.dumps({"files": {"train.parquet": {"bytes": 1, "sha256": "x"}}}))
    with pytest.raises(InputError) as e:
        prepare_sft(tmp_path / "data", copy, overwrite=True)
    assert str(e.value) == (f"--out {copy}: train.parquet belong to a prepared set ({copy / '.dvmap-manifest.json'} "
                            f"lists them); write the SFT set to another folder")
    assert (tmp_path / "data" / "train.parquet").read_bytes() == before
    assert (copy / "train.parquet").read_bytes() == before
