"""Data-parallel evaluation through Ray actors, on CPU with the transformers backend: the same predictions as one
engine, no pair lost or written twice, and a kill mid-run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvmap_verl.evaluation.backends import make_backend
from dvmap_verl.evaluation.evaluate import PREDICTIONS, EvalConfig, read_predictions, run_eval

CLI = [sys.executable, "-m", "dvmap_verl.cli"]


@pytest.fixture(scope="module")
def data(synthetic_data) -> Path:
    return synthetic_data(3000, seed=12)


@pytest.mark.slow
def test_two_replicas_give_the_same_predictions_as_one(data, tiny_model_dir, tmp_path):
    import ray

    config = EvalConfig(backend="hf", model=str(tiny_model_dir), data=[str(data / "cross_demographic.parquet")],
                        samples=2, limit=24, max_tokens=6, temperature=0.0)
    one = run_eval(make_backend("hf", str(tiny_model_dir), config.generation(), batch_size=4), tmp_path / "one",
                   config, quiet=True)
    try:
        backend = make_backend("hf", str(tiny_model_dir), config.generation(), batch_size=4, replicas=2)
        assert backend.replicas == 2 and backend.chunk == 4
        two = run_eval(backend, tmp_path / "two", config, quiet=True)
        assert sum(backend.done_per_replica) == 48 and min(backend.done_per_replica) > 0  # both replicas worked
    finally:
        ray.shutdown()
    assert one["written"] == two["written"] == 48 and two["failed"] == 0
    a = read_predictions(tmp_path / "one" / PREDICTIONS).set_index(["item", "sample"]).sort_index()
    b = read_predictions(tmp_path / "two" / PREDICTIONS).set_index(["item", "sample"]).sort_index()
    assert b.index.is_unique and len((tmp_path / "two" / PREDICTIONS).read_bytes().splitlines()) == 48
    assert a["completion"].tolist() == b["completion"].tolist()  # batches are the same, so greedy output is too
    assert a["finish_reason"].tolist() == b["finish_reason"].tolist()  # the replies' fields survive the actors
    assert a["reply"].tolist() == b["reply"].tolist()


@pytest.mark.slow
def test_replicas_score_options_as_one_engine_does(data, tiny_model_dir, tmp_path):
    """The replicated backend is a ScoringBackend: the logprob readout through two replicas gives one engine's
    probabilities, item for item (the scoring is deterministic)."""
    import numpy as np
    import ray

    from dvmap_verl.evaluation.backends import ScoringBackend

    config = EvalConfig(backend="hf", model=str(tiny_model_dir), data=[str(data / "cross_demographic.parquet")],
                        limit=10, readout="logprob")
    run_eval(make_backend("hf", str(tiny_model_dir), config.generation(), batch_size=4), tmp_path / "one", config,
             quiet=True)
    try:
        backend = make_backend("hf", str(tiny_model_dir), config.generation(), batch_size=4, replicas=2)
        assert isinstance(backend, ScoringBackend)
        status = run_eval(backend, tmp_path / "two", config, quiet=True)
        assert sum(backend.done_per_replica) == 10 and min(backend.done_per_replica) > 0  # both replicas scored
    finally:
        ray.shutdown()
    assert status["written"] == 10 and status["failed"] == 0
    a = read_predictions(tmp_path / "one" / PREDICTIONS).sort_values("item")
    b = read_predictions(tmp_path / "two" / PREDICTIONS).sort_values("item")
    assert a["item"].tolist() == b["item"].tolist() == list(range(10))
    for p, q in zip(a["probs"], b["probs"]):
        assert np.allclose(p, q, atol=1e-6)
    assert a["pred"].tolist() == b["pred"].tolist()


@pytest.mark.slow
def test_kill_mid_run_with_replicas_then_resume(data, tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    args = CLI + ["eval", "--backend", "hf", "--model", str(tiny_model_dir), "--data",
                  str(data / "cross_demographic.parquet"), "--out", str(run), "--limit", "60", "--samples", "2",
                  "--max-tokens", "24", "--temperature", "0", "--batch-size", "2", "--replicas", "2", "--no-report"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray cluster of its own
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (run / PREDICTIONS).exists() and (run / PREDICTIONS).read_bytes().count(b"\n") >= 8:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    proc.wait()
    killed_at = len(read_predictions(run / PREDICTIONS))
    assert 8 <= killed_at < 120
    res = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = (run / PREDICTIONS).read_bytes().splitlines()
    keys = [(json.loads(l)["item"], json.loads(l)["sample"]) for l in lines]
    assert len(keys) == len(set(keys)) == 120  # nothing lost, nothing written twice
    engine = json.loads((run / "run.json").read_text())["config"]["engine"]
    assert engine["replicas"] == "2" and engine["batch_size"] == 2
    assert "engine: {'replicas': 2, 'gpus_per_replica': 0" in res.stdout


def test_replica_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="scales with --concurrency"):
        from dvmap_verl.evaluation.backends import GenerationSettings

        make_backend("openai", "m", GenerationSettings(), replicas=2)
    res = subprocess.run(CLI + ["eval", "--backend", "hf", "--model", "m", "--data", "x.parquet", "--out",
                                str(tmp_path / "r"), "--replicas", "0"], capture_output=True, text=True)
    assert res.returncode == 2 and "argument --replicas: must be at least 1" in res.stderr


def test_vllm_backend_sends_all_samples_of_an_item_as_one_request(monkeypatch):
    """vLLM is GPU-only; a stand-in module records what our backend asks of `LLM.chat`: one prompt per item with
    n = its missing samples, a seed per item, prefix caching on, max_model_len passed, chunks of whole items."""
    import types

    calls = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class LLM:
        def __init__(self, **kw):
            calls["engine"] = kw

        def chat(self, conversations, params, use_tqdm, chat_template_kwargs):
            calls.setdefault("chats", []).append((conversations, params))
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"{c[-1]['content']}#{k}",
                                                                          finish_reason="length" if k else "stop")
                                                   for k in range(p.n)]) for c, p in zip(conversations, params)]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    from dvmap_verl.evaluation.backends import GenerationSettings, Reply, Request
    from dvmap_verl.evaluation.backends.vllm import VLLMBackend

    backend = VLLMBackend("m", GenerationSettings(temperature=0.7, max_tokens=32, seed=3), max_model_len=900, chunk=2)
    assert calls["engine"]["enable_prefix_caching"] is True and calls["engine"]["max_model_len"] == 900
    msgs = {i: ({"role": "user", "content": f"item{i}"},) for i in range(3)}
    # Item 1 resumes with one sample missing; items 0 and 2 need all three.
    requests = [Request(i, s, msgs[i]) for i in range(3) for s in range(3) if not (i == 1 and s != 2)]
    got = {}
    backend.run(requests, lambda r, t: got.__setitem__((r.item, r.sample), t), lambda r, e: None)
    assert len(got) == 7 and got[(1, 2)] == Reply("item1#0", None, "stop", "text")
    assert got[(2, 1)] == Reply("item2#1", None, "length", "text")
    (c1, p1), (c2, p2) = calls["chats"]
    assert [p.n for p in p1] == [3, 1] and [p.n for p in p2] == [3]  # chunks of whole items
    assert [p.seed for p in p1] == [3 * 1_000_003 + 0, 3 * 1_000_003 + 101]
    assert all(p.temperature == 0.7 and p.max_tokens == 32 for p in p1 + p2)
