"""eval/merge_checkpoint.py: a verl FSDP checkpoint (as verl saves it) merged by verl's own model merger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _fsdp_checkpoint(tiny_model_dir: Path, root: Path) -> tuple[Path, dict]:
    """global_step_3/actor with a world-size-1 DTensor state dict, fsdp_config.json and huggingface/, as verl writes."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)  # "trained": differs from the initial weights
    actor = root / "global_step_3" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    model.config.save_pretrained(actor / "huggingface")
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(actor / "huggingface")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29531")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("fsdp",))
        state = {k: distribute_tensor(v.detach().clone(), mesh, [Shard(0)]) for k, v in model.state_dict().items()}
        torch.save(state, actor / "model_world_size_1_rank_0.pt")
    finally:
        dist.destroy_process_group()
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))
    (root / "latest_checkpointed_iteration.txt").write_text("3")
    return root, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_merge_script_turns_checkpoint_into_hf_model(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    root, expected = _fsdp_checkpoint(tiny_model_dir, tmp_path / "checkpoints")
    target = tmp_path / "merged"
    res = subprocess.run([sys.executable, str(REPO / "eval" / "merge_checkpoint.py"), str(root), str(target)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    merged = AutoModelForCausalLM.from_pretrained(str(target))
    state = merged.state_dict()
    assert set(state) == set(expected)  # no weight lost or invented, before any value is compared
    for k, v in state.items():
        assert torch.allclose(v.float(), expected[k].float(), atol=1e-2), k
    assert (target / "tokenizer.json").exists() or (target / "tokenizer_config.json").exists()
    res = subprocess.run([sys.executable, str(REPO / "eval" / "merge_checkpoint.py"), str(tmp_path / "nope"),
                          str(target)], capture_output=True, text=True)
    assert res.returncode == 2 and "no such checkpoint folder" in res.stderr
    # The same merge as a console command (`dvmap merge`, what README and `dvmap smoke` use).
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "merge", str(root), str(tmp_path / "merged2")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "merged Hugging Face model" in res.stdout, res.stderr[-3000:]
    assert (tmp_path / "merged2" / "config.json").exists()
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "merge", str(tmp_path / "nope"), str(target)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "no such checkpoint folder" in res.stderr


@pytest.mark.slow
def test_evaluate_checkpoint_end_to_end(tiny_model_dir, tmp_path):
    from dvmap_verl.data import synth
    from dvmap_verl.data.prepare import prepare_wvs

    root, _ = _fsdp_checkpoint(tiny_model_dir, tmp_path / "checkpoints")
    synth.write(synth.generate(3000, seed=2), tmp_path / "wvs.csv")
    prepare_wvs(tmp_path / "wvs.csv", tmp_path / "data", quiet=True)
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, str(REPO / "eval" / "evaluate_checkpoint.py"), str(root),
                          str(tmp_path / "data"), str(out), "--backend", "hf", "--limit", "6", "--max-tokens", "8",
                          "--bootstrap", "50", "--quiet"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "merged_model" / "config.json").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["n_items"] == 6 and "majority_country_question" in metrics["baselines"]
