"""The per-GPU memory estimate (dvmap_verl/training/memory.py) against hand arithmetic, and `dvmap doctor`'s use of
it: a configuration it must refuse (Qwen3-8B full fine-tuning on one 80 GB GPU), one it must accept (LoRA with
offload on one GPU) and the benchmark's plain single-GPU bf16 configuration."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dvmap_verl.training.memory import (GIB, PRESETS, Setup, estimate, gpus_that_fit, overrides_that_fit,
                                        shape_from_config)

# ---- Qwen3-8B by hand (config.json: hidden 4096, 36 layers, MLP 12288, 32 heads, 8 KV heads, head_dim 128,
# vocabulary 151936, untied LM head).
Q8_EMBED = 151936 * 4096                                   # 622,329,856, once for the input, once for the LM head
Q8_LAYER = (4096 * 4096 + 4096 * 1024 + 4096 * 1024 + 4096 * 4096  # q, k, v, o
            + 3 * 4096 * 12288                                     # gate, up, down
            + 2 * 4096 + 2 * 128)                                  # two RMSNorms, q_norm, k_norm
Q8_P = 36 * Q8_LAYER + 2 * Q8_EMBED + 4096                  # + the final norm
Q8_A = 16 * 4096 + 10 * 4096 + 10 * 1024 + 8 * 12288        # activation bytes per token per layer = 215,040
Q8_LORA32 = 36 * 32 * ((4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096) + 2 * (4096 + 12288) + (12288 + 4096))
GATHERED_8B = 2 * 2 * Q8_EMBED                              # the LM head is the largest FSDP unit


def test_qwen3_8b_sizes_by_hand():
    m = PRESETS["Qwen/Qwen3-8B"]
    assert Q8_LAYER == 192_946_432 and Q8_P == 8_190_735_360  # the model card's "8.2B"
    assert m.params() == Q8_P
    assert m.layer_params() == Q8_LAYER and m.embedding_params() == Q8_EMBED
    assert m.activation_bytes_per_token() == Q8_A == 215_040
    assert m.lora_params(32) == Q8_LORA32 == 87_293_952        # 1.07 % of the model


def test_qwen3_8b_full_fine_tuning_on_one_80gb_gpu_is_refused():
    m = PRESETS["Qwen/Qwen3-8B"]
    s = Setup(m, n_gpus=1, gpu_memory_bytes=80 * GIB, model_dtype_bytes=4, tokens_per_micro_batch=12288,
              gpu_memory_utilization=0.5, max_sequence_length=2048)
    e = estimate(s)
    # ZeRO's 16 bytes per parameter: fp32 weights 4 + fp32 gradients 4 + Adam 8.
    assert e.parts["actor training"]["actor weights"] == 4 * Q8_P == 32_762_941_440
    assert e.parts["actor training"]["actor gradients"] == 4 * Q8_P
    assert e.parts["actor training"]["actor adam"] == 8 * Q8_P == 65_525_882_880
    activations = 12288 * (36 * 2 * 4096 + Q8_A)                # checkpointed layer inputs + one recomputed layer
    logits = 12288 * 151936 * 6
    assert activations == 6_266_290_176 and logits == 11_201_937_408
    train = 16 * Q8_P + GATHERED_8B + activations + logits + 2 * GIB
    assert e.phase("actor training") == train == 153_156_796_416    # 142.6 GiB
    assert e.peak == ("actor training", train) and not e.fits
    # Rollout: resident fp32 weights + Adam (12 bytes/param) + half the GPU for vLLM + overhead.
    assert e.phase("rollout") == 12 * Q8_P + 40 * GIB + 2 * GIB
    # What fits instead: LoRA (rank 32, lr x 10) on the same GPU, or the unchanged run on 4 GPUs:
    # 2 GPUs: 16P/2 + 2.49e9 + 6.27e9 + 11.2e9 + 2.15e9 = 87.6e9 bytes = 81.6 GiB > 80; 4 GPUs: 51.1 GiB.
    fix = overrides_that_fit(s)
    assert "actor_rollout_ref.model.lora_rank=32" in fix and "actor_rollout_ref.rollout.load_format=safetensors" in fix
    assert gpus_that_fit(s) == 4


def test_qwen3_8b_lora_on_one_gpu_fits_only_with_offload():
    m = PRESETS["Qwen/Qwen3-8B"]
    s = Setup(m, n_gpus=1, gpu_memory_bytes=80 * GIB, model_dtype_bytes=4, lora_rank=32, tokens_per_micro_batch=12288,
              gpu_memory_utilization=0.6, max_sequence_length=2048)
    e = estimate(s)
    # Rollout without offload: fp32 base 4P + the adapter's Adam 8T + 0.6 x 80 GiB + 2 GiB.
    rollout = 4 * Q8_P + 8 * Q8_LORA32 + int(0.6 * 80 * GIB) + 2 * GIB
    assert rollout == 87_148_384_256 and e.phase("rollout") == rollout  # 81.2 GiB > 80 GiB
    assert e.peak == ("rollout", rollout) and not e.fits
    assert overrides_that_fit(s) == ["actor_rollout_ref.actor.fsdp_config.param_offload=true",
                                     "actor_rollout_ref.actor.fsdp_config.optimizer_offload=true"]
    off = estimate(Setup(m, n_gpus=1, gpu_memory_bytes=80 * GIB, model_dtype_bytes=4, lora_rank=32,
                         tokens_per_micro_batch=12288, gpu_memory_utilization=0.6, max_sequence_length=2048,
                         param_offload=True, optimizer_offload=True))
    train = 4 * Q8_P + 4 * Q8_LORA32 + 8 * Q8_LORA32 + GATHERED_8B + 6_266_290_176 + 11_201_937_408 + 2 * GIB
    assert off.phase("actor training") == train == 55_915_499_520          # 52.1 GiB
    assert off.phase("rollout") == int(0.6 * 80 * GIB) + 2 * GIB           # 50 GiB: only vLLM's share
    assert off.peak == ("actor training", train) and off.fits
    # vLLM's KV cache: 48 GiB minus 2P bytes of bf16 weights; one 2048-token sequence needs 36 x 2 x 1024 x 2 bytes
    # per token.
    assert off.vllm_kv_bytes == int(0.6 * 80 * GIB) - 2 * Q8_P
    assert off.min_kv_bytes == 2048 * 36 * 2 * 1024 * 2 == 301_989_888


def test_qwen3_06b_single_gpu_bf16_without_fsdp_as_in_the_gpu_benchmark():
    """Qwen3-0.6B, everything bf16 (weights, gradients, AdamW states), no FSDP, no checkpointing, 4096 tokens."""
    layer = (1024 * 2048 + 1024 * 1024 + 1024 * 1024 + 2048 * 1024 + 3 * 1024 * 3072 + 2 * 1024 + 2 * 128)
    params = 28 * layer + 151936 * 1024 + 1024                  # tied embeddings: counted once
    assert layer == 15_730_944 and params == 596_049_920
    a = 16 * 1024 + 10 * 2048 + 10 * 1024 + 8 * 3072           # 71,680
    s = Setup(PRESETS["Qwen/Qwen3-0.6B"], n_gpus=1, model_dtype_bytes=2, gradient_checkpointing=False,
              tokens_per_micro_batch=4096, fsdp=False)
    e = estimate(s)
    train = e.parts["actor training"]
    assert train["actor weights"] + train["actor gradients"] + train["actor adam"] == 8 * params == 4_768_399_360
    assert train["FSDP gathered units"] == 0
    assert train["activations"] == 4096 * 28 * a == 8_220_835_840
    assert train["logits"] == 4096 * 151936 * 6 == 3_733_979_136
    assert e.phase("actor training") == 4_768_399_360 + 8_220_835_840 + 3_733_979_136 + 2 * GIB
    # Checkpointing keeps 28 layer inputs (2h bytes each) and one recomputed layer: 4096 x (28 x 2048 + 71,680).
    ckpt = estimate(Setup(PRESETS["Qwen/Qwen3-0.6B"], model_dtype_bytes=2, tokens_per_micro_batch=4096, fsdp=False))
    assert ckpt.parts["actor training"]["activations"] == 4096 * (28 * 2048 + a) == 528_482_304


def test_shape_from_a_local_config_and_a_missing_field():
    from dvmap_verl.errors import InputError

    cfg = {"model_type": "qwen3", "hidden_size": 1024, "num_hidden_layers": 28, "intermediate_size": 3072,
           "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
           "tie_word_embeddings": True}
    assert shape_from_config(cfg) == PRESETS["Qwen/Qwen3-0.6B"]
    with pytest.raises(InputError, match="x/config.json: no 'vocab_size' field"):
        shape_from_config({k: v for k, v in cfg.items() if k != "vocab_size"}, "x/config.json")


def test_doctor_memory_check_on_the_recipes(monkeypatch):
    from dvmap_verl.training.doctor import FAIL, OK, SKIP, memory_check
    from dvmap_verl.training.dryrun import compose_ppo_config

    full = compose_ppo_config(["+recipe=dvmap_qwen3_8b", "trainer.n_gpus_per_node=1",
                               "actor_rollout_ref.rollout.tensor_model_parallel_size=1"])
    check = memory_check(full, 80)
    assert check.status == FAIL
    assert "peak 142.6 GiB per GPU (actor training) against 80.0 GiB" in check.detail
    assert "lora_rank=32" in check.detail and "or unchanged on 4 GPUs" in check.detail
    lora = compose_ppo_config(["+recipe=dvmap_qwen3_8b_lora", "dvmap.gpus=1"])
    check = memory_check(lora, 80)
    assert check.status == FAIL and "peak 81.2 GiB per GPU (rollout)" in check.detail
    assert "fits with: actor_rollout_ref.actor.fsdp_config.param_offload=true" in check.detail
    for recipe in (["+recipe=dvmap_qwen3_8b_lora_offload"], ["+recipe=dvmap_qwen3_8b_lora", "dvmap.gpus=2"],
                   ["+recipe=dvmap_qwen3_8b_lora", "dvmap.gpus=4"], ["+recipe=dvmap_qwen3_8b"],
                   ["+recipe=dvmap_qwen3_4b"], ["+recipe=dvmap_qwen3_1.7b"], ["+recipe=dvmap_qwen3_0.6b"],
                   ["+recipe=dvmap_llama3.2_3b"]):  # every shipped recipe fits the GPUs it is written for
        assert memory_check(compose_ppo_config(recipe), 80).status == OK, recipe
    assert memory_check(full, None).status in (SKIP, FAIL)  # SKIP without a GPU; on a GPU machine, its memory


def test_doctor_cli_exits_1_naming_the_overrides(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "doctor", "+recipe=dvmap_qwen3_8b",
                          "trainer.n_gpus_per_node=1", "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
                          "--gpus", "1", "--gpu-memory-gb", "80"], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env=env)
    assert res.returncode == 1
    assert "[FAIL] memory: peak 142.6 GiB per GPU (actor training) against 80.0 GiB (--gpu-memory-gb 80" in res.stdout
    assert "fits with: actor_rollout_ref.model.lora_rank=32" in res.stdout
    bad = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "doctor", "+recipe=dvmap_qwen3_8b",
                          "--gpu-memory-gb", "-3"], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and "--gpu-memory-gb" in bad.stderr


@pytest.mark.parametrize("overrides, message", [
    (["+recipe=dvmap_qwen3_8b_lora", "dvmap.gpus=0"],
     "dvmap.gpus=0: trainer.n_gpus_per_node is 0; it must be a whole number of at least 1"),
    (["+recipe=dvmap_qwen3_8b", "trainer.nnodes=0"],
     "trainer.nnodes=0: trainer.nnodes is 0; it must be a whole number of at least 1"),
    (["+recipe=dvmap_qwen3_8b_lora", "dvmap.gpus=abc"],
     "dvmap.gpus=abc: trainer.n_gpus_per_node is 'abc'; it must be a whole number of at least 1"),
    (["+recipe=dvmap_qwen3_8b_lora", "dvmap.gpus=1.5"],
     "dvmap.gpus=1.5: trainer.n_gpus_per_node is 1.5; it must be a whole number of at least 1"),
])
def test_doctor_refuses_a_gpu_count_that_is_not_a_positive_integer(overrides, message, capsys, monkeypatch):
    from dvmap_verl.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["doctor", *overrides, "--gpu-memory-gb", "80"]) == 2
    out, err = capsys.readouterr()
    assert err == f"dvmap: error: {message}\n" and "[  ok] config" not in out


def test_doctors_proposal_fits_when_applied_with_a_tp_the_gpu_can_hold():
    """Qwen3-8B full FT on one 80 GB GPU (the recipe's rollout TP is 2): the proposal sets TP 1 too, and the config
    with the proposal applied passes the GPU and memory checks; its vLLM weights are not split over 2 GPUs."""
    from dvmap_verl.training.doctor import FAIL, OK, _gpus, memory_check
    from dvmap_verl.training.dryrun import compose_ppo_config

    base = ["+recipe=dvmap_qwen3_8b", "trainer.n_gpus_per_node=1"]
    check = memory_check(compose_ppo_config(base), 80)
    assert check.status == FAIL
    proposal = check.detail.split("fits with: ")[1].split(";")[0].split()
    assert proposal == ["actor_rollout_ref.rollout.tensor_model_parallel_size=1",
                        "actor_rollout_ref.model.lora_rank=32", "actor_rollout_ref.model.lora_alpha=32",
                        "actor_rollout_ref.rollout.load_format=safetensors", "actor_rollout_ref.actor.optim.lr=5e-5"]
    applied = compose_ppo_config(base + proposal)
    assert _gpus(applied, 1).status == OK
    check = memory_check(applied, 80)
    # Rollout: fp32 base 4P + the adapter's Adam 8T + 0.5 x 80 GiB + 2 GiB = 78,558,449,664 bytes = 73.2 GiB;
    # vLLM's KV cache: 40 GiB - 2P (unsplit bf16 weights at TP 1) = 26,568,202,240 bytes = 24.7 GiB.
    assert 4 * Q8_P + 8 * Q8_LORA32 + 42 * GIB == 78_558_449_664
    assert check.status == OK and "peak 73.2 GiB per GPU (rollout)" in check.detail
    assert 40 * GIB - 2 * Q8_P == 26_568_202_240
    assert "vLLM KV cache 24.7 GiB after 15.3 GiB of weights" in check.detail
    # The README's one-GPU LoRA line: the LoRA recipe with vLLM's share lowered to 0.5 gives the same 73.2 GiB.
    lora1 = compose_ppo_config(["+recipe=dvmap_qwen3_8b_lora", "dvmap.gpus=1",
                                "actor_rollout_ref.rollout.gpu_memory_utilization=0.5"])
    assert memory_check(lora1, 80).status == OK and "peak 73.2 GiB" in memory_check(lora1, 80).detail


def test_a_vllm_share_below_its_weights_names_the_cause_and_the_fix():
    from dvmap_verl.training.doctor import FAIL, memory_check
    from dvmap_verl.training.dryrun import compose_ppo_config

    cfg = compose_ppo_config(["+recipe=dvmap_qwen3_8b_lora", "dvmap.gpus=2",
                              "actor_rollout_ref.rollout.gpu_memory_utilization=0.1"])
    check = memory_check(cfg, 80)
    # 0.1 x 80 GiB = 8 GiB < 2P = 15.3 GiB of bf16 weights (TP 1) + 0.28 GiB for one 2048-token sequence;
    # (16,381,470,720 + 301,989,888) / 85,899,345,920 = 0.194 -> 0.20 in steps of 0.05.
    assert (2 * Q8_P + 301_989_888) / (80 * GIB) == pytest.approx(0.1942, abs=1e-4)
    assert check.status == FAIL and check.detail.endswith(
        "does not fit: vLLM's share (0.1 x 80.0 GiB) is below its 15.3 GiB of weights plus one sequence's KV cache: "
        "actor_rollout_ref.rollout.gpu_memory_utilization needs at least 0.20")
