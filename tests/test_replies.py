"""Replies of every shape, for every backend: each shape served by the local fake server (or made by the tiny model),
then the exact records, the report's counts and the console's warning. Synthetic data; no network, no downloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dvmap_verl.evaluation.backends import Reply, make_backend
from dvmap_verl.evaluation.backends.openai import BadReplyError, parse_chat_reply
from dvmap_verl.evaluation.evaluate import PREDICTIONS, EvalConfig, run_eval
from dvmap_verl.evaluation.report import build_report
from fake_openai import Body, FakeServer

CLI = [sys.executable, "-m", "dvmap_verl.cli"]
N = 6  # items per server run


@pytest.fixture(scope="module")
def data(synthetic_data) -> Path:
    return synthetic_data(4000, seed=11)


def _item(seed: int) -> int:
    return seed // 101  # the backend's seed for item i, sample 0, run seed 0 is 101 * i


def _records(run: Path) -> list[dict]:
    return sorted((json.loads(line) for line in (run / PREDICTIONS).read_text().splitlines()),
                  key=lambda r: (r["item"], r["sample"]))


def _options(run: Path) -> list[list[str]]:
    return [list(o) for o in pd.read_parquet(run / "items.parquet")["options"]]


def _serve(data: Path, run: Path, shape, max_retries: int = 2, limit: int = N):
    config = EvalConfig(backend="openai", model="fake", data=[str(data / "val.parquet")], limit=limit)
    with FakeServer(fail_every=0, shape=shape) as server:
        backend = make_backend("openai", "fake", config.generation(), base_url=server.base_url, concurrency=3,
                               max_retries=max_retries, timeout=10.0)
        backend.backoff = 0.01
        status = run_eval(backend, run, config, quiet=True)
    return status, server, config


def _replies(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["replies"]


ZERO = {"truncated": 0, "empty": 0, "tool_call": 0, "reasoning_only": 0, "dropped_parts": 0,
        "answered_from_reasoning": 0}


# ------------------------------------------------------------------------------------------------ the parser


def test_parser_reads_every_shape_and_names_what_is_not_a_completion():
    def body(message, finish="stop"):
        return json.dumps({"choices": [{"index": 0, "message": message, "finish_reason": finish}]})

    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}, "b",
             {"type": "refusal", "refusal": "no"}, {"type": "thinking", "thinking": [{"type": "text", "text": "t"}]}]
    assert parse_chat_reply(body({"content": parts})) == Reply("ab", "t", "stop", "text", 2)
    assert parse_chat_reply(body({"content": None, "reasoning_content": "r", "reasoning": "r"}, "length")) == \
        Reply("", "r", "length", "reasoning_only", 0)
    assert parse_chat_reply(body({"content": "", "reasoning": "r2"})) == Reply("", "r2", "stop", "reasoning_only", 0)
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert parse_chat_reply(body({"content": None, "tool_calls": calls}, "tool_calls")) == \
        Reply("", None, "tool_calls", "tool_call", 0)
    assert parse_chat_reply(body({"content": "  \n"}, None)) == Reply("  \n", None, None, "empty", 0)
    assert parse_chat_reply(body({"content": None, "refusal": "I can't"})) == Reply("", None, "stop", "empty", 1)

    bad = {
        '{"object": "error", "message": "The model `m` does not exist.", "type": "NotFoundError", "code": 404}':
            "server error: The model `m` does not exist. (type NotFoundError, code 404)",
        '{"error": {"message": "Rate limit reached", "type": "requests", "code": null}}':
            "server error: Rate limit reached (type requests)",
        '{"error": "overloaded"}': "server error: overloaded",
        '{"id": "x"}': """malformed reply (no choices): '{"id": "x"}'""",
        '{"choices": []}': """malformed reply (empty choices): '{"choices": []}'""",
        '{"choices": [1]}': """malformed reply (choice is not an object): '{"choices": [1]}'""",
        '{"choices": [{"index": 0}]}': """malformed reply (choice without a message): '{"choices": [{"index": 0}]}'""",
        '[1, 2]': "malformed reply (no choices): '[1, 2]'",
    }
    for raw, message in bad.items():
        with pytest.raises(BadReplyError) as e:
            parse_chat_reply(raw)
        assert str(e.value) == message, raw
    with pytest.raises(BadReplyError, match=r"^reply is not JSON \(Expecting value: line 1 column 1 \(char 0\)\): "
                                            r"'<html>502</html>'$"):
        parse_chat_reply("<html>502</html>")


# ------------------------------------------------------------------------------------------------ each shape, served


def test_content_parts_are_joined_and_the_others_counted(data, tmp_path):
    def shape(seed, attempt, options):
        return {"content": [{"type": "text", "text": "<reasoning>\nr\n</reasoning>\n"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                            {"type": "text", "text": f"<answer>\n{options[1]}\n</answer>"}]}

    run = tmp_path / "run"
    status, _, _ = _serve(data, run, shape)
    assert status["written"] == N and status["failed"] == 0
    opts = _options(run)
    assert _records(run) == [
        {"item": i, "sample": 0, "completion": f"<reasoning>\nr\n</reasoning>\n<answer>\n{opts[i][1]}\n</answer>",
         "answer": f"\n{opts[i][1]}\n", "pred": 1, "finish_reason": "stop", "reply": "text", "dropped_parts": 1}
        for i in range(N)]
    report = build_report(run, bootstrap=0, importance=False)
    assert report["replies"] == {"by_split": {"val": {"replies": N, **ZERO, "finish_reason_known": N,
                                                      "dropped_parts": N}},
                                 "all": {"replies": N, **ZERO, "finish_reason_known": N, "dropped_parts": N},
                                 "warnings": []}
    assert report["model"]["unparsed_rate"] == 0.0
    md = (run / "report.md").read_text()
    assert "| val | 6 | 0 | 0 | 0 | 0 | 6 |" in md and "Warning" not in md


def test_null_content_with_reasoning_cut_at_length(data, tmp_path):
    def shape(seed, attempt, options):
        return {"content": None, "reasoning_content": "Weighing the options", "finish_reason": "length"}

    run = tmp_path / "run"
    status, _, _ = _serve(data, run, shape)
    assert status["written"] == N and status["failed"] == 0
    assert _records(run) == [
        {"item": i, "sample": 0, "completion": "", "answer": None, "pred": -1, "finish_reason": "length",
         "reply": "reasoning_only", "reasoning": "Weighing the options"} for i in range(N)]
    report = build_report(run, bootstrap=0, importance=False)
    counts = {"replies": N, **ZERO, "truncated": N, "reasoning_only": N, "finish_reason_known": N}
    assert report["replies"]["by_split"] == {"val": counts} and report["replies"]["all"] == counts
    assert report["replies"]["warnings"] == [
        "split val: 6 of 6 replies (100.0%) were cut at max_tokens (finish_reason length); raise --max-tokens",
        "split val: 6 of 6 replies (100.0%) were reasoning-only; the answer may sit in the reasoning: a larger "
        "--max-tokens, or --answer-from-reasoning"]
    assert report["model"]["unparsed_rate"] == 1.0 and report["model"]["acc"] == 0.0  # not an answer
    md = (run / "report.md").read_text()
    assert "> **Warning.** split val: 6 of 6 replies (100.0%) were cut at max_tokens" in md
    assert "| val | 6 | 6 | 0 | 0 | 6 |" in md


def test_tool_call_only_replies(data, tmp_path):
    call = [{"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{\"q\": \"wvs\"}"}}]

    def shape(seed, attempt, options):
        return {"content": None, "tool_calls": call, "finish_reason": "tool_calls"}

    run = tmp_path / "run"
    status, _, _ = _serve(data, run, shape)
    assert status["written"] == N and status["failed"] == 0
    assert _records(run) == [{"item": i, "sample": 0, "completion": "", "answer": None, "pred": -1,
                              "finish_reason": "tool_calls", "reply": "tool_call"} for i in range(N)]
    replies = build_report(run, bootstrap=0, importance=False)["replies"]
    assert replies["all"] == {"replies": N, **ZERO, "tool_call": N, "finish_reason_known": N}
    assert replies["warnings"] == ["split val: 6 of 6 replies (100.0%) were tool-call-only; the model called a tool "
                                   "instead of answering"]


def test_http_200_error_objects_are_retried_recorded_failed_and_retried_by_a_rerun(data, tmp_path):
    broken = {"on": True}
    errors = {1: Body({"object": "error", "message": "The model `fake` does not exist.", "type": "NotFoundError",
                       "code": 404}),
              4: Body({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}})}

    def shape(seed, attempt, options):
        return errors.get(_item(seed)) if broken["on"] else None

    run = tmp_path / "run"
    status, server, config = _serve(data, run, shape, max_retries=2)
    assert status["written"] == N - 2 and status["failed"] == 2
    assert sorted(status["errors"]) == [
        "item 1 sample 0: RuntimeError: request for item 1 sample 0 failed after 3 attempt(s): BadReplyError: "
        "server error: The model `fake` does not exist. (type NotFoundError, code 404)",
        "item 4 sample 0: RuntimeError: request for item 4 sample 0 failed after 3 attempt(s): BadReplyError: "
        "server error: Rate limit reached (type requests, code rate_limit)"]
    assert {_item(k): v for k, v in server.attempts.items()} == {0: 1, 1: 3, 2: 1, 3: 1, 4: 3, 5: 1}
    assert [r["item"] for r in _records(run)] == [0, 2, 3, 5]  # failed requests are not written: a rerun retries

    broken["on"] = False
    with FakeServer(fail_every=0, shape=shape) as server:
        backend = make_backend("openai", "fake", config.generation(), base_url=server.base_url, max_retries=2)
        again = run_eval(backend, run, config, quiet=True)
    assert again == {"requested": 2, "resumed_from": N - 2, "written": 2, "failed": 0, "errors": []}
    assert {_item(k): v for k, v in server.attempts.items()} == {1: 1, 4: 1}
    assert [r["item"] for r in _records(run)] == list(range(N))
    assert all(r["pred"] == 0 and r["reply"] == "text" for r in _records(run))


def test_malformed_bodies_are_retried_and_a_lasting_one_fails_with_the_body(data, tmp_path):
    first = {0: '{"id": "x", "object": "chat.completion"}', 1: Body({"id": "x", "choices": []}),
             2: "<html><body>502 Bad Gateway</body></html>"}

    def shape(seed, attempt, options):
        item = _item(seed)
        if item == 5:
            return Body({"id": "x", "choices": []})  # every attempt
        return first.get(item) if attempt == 1 else None

    run = tmp_path / "run"
    status, server, _ = _serve(data, run, shape, max_retries=1)
    assert status["written"] == N - 1 and status["failed"] == 1
    assert status["errors"] == ["item 5 sample 0: RuntimeError: request for item 5 sample 0 failed after 2 "
                                """attempt(s): BadReplyError: malformed reply (empty choices): '{"id": "x", """
                                """"choices": []}'"""]
    assert {_item(k): v for k, v in server.attempts.items()} == {0: 2, 1: 2, 2: 2, 3: 1, 4: 1, 5: 2}
    opts = _options(run)
    assert _records(run) == [
        {"item": i, "sample": 0, "completion": f"<reasoning>\nserved\n</reasoning>\n<answer>\n{opts[i][0]}\n</answer>",
         "answer": f"\n{opts[i][0]}\n", "pred": 0, "finish_reason": "stop", "reply": "text"} for i in range(5)]


# ------------------------------------------------------------------------------------------------ the console


def test_console_counts_per_split_warns_and_answer_from_reasoning_is_guarded(data, tmp_path):
    """Every third item answers only in its reasoning, every third after it replies nothing: per split counts on
    the console with a WARNING above 1%; --answer-from-reasoning reads the reasoning's block, is recorded in
    run.json, and a resume without it is refused (an older run.json without the key resumes as False)."""
    def shape(seed, attempt, options):
        item = _item(seed)
        if item % 3 == 0:
            return {"content": None, "reasoning_content": f"<answer>{options[2]}</answer>"}
        if item % 3 == 1:
            return {"content": ""}
        return None

    run = tmp_path / "run"
    files = [str(data / "val.parquet"), str(data / "cross_demographic.parquet")]
    args = CLI + ["eval", "--backend", "openai", "--model", "fake", "--data", *files, "--out", str(run),
                  "--limit", "30", "--bootstrap", "0", "--quiet"]
    with FakeServer(fail_every=0, shape=shape) as server:
        res = subprocess.run(args + ["--base-url", server.base_url, "--answer-from-reasoning"], capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        items = pd.read_parquet(run / "items.parquet")
        splits = items["split"].tolist()
        lines = []
        for split in ("cross_demographic", "val"):
            n = splits.count(split)
            reasoning = sum(s == split for i, s in enumerate(splits) if i % 3 == 0)
            empty = sum(s == split for i, s in enumerate(splits) if i % 3 == 1)
            assert n > 3 and reasoning and empty  # both splits hold every shape
            lines.append(f"{'replies ' + split:>28}: {n}; truncated 0, empty {empty}, tool-call-only 0, "
                         f"reasoning-only {reasoning}, answered from reasoning {reasoning}")
            assert lines[-1] in res.stdout
            assert f"WARNING: split {split}: {empty} of {n} replies ({empty / n:.1%}) were empty; the server " \
                   f"returned no text" in res.stdout
            assert f"WARNING: split {split}: {reasoning} of {n} replies ({reasoning / n:.1%}) were reasoning-only" \
                   in res.stdout
        recs = _records(run)
        assert [r["pred"] for r in recs] == [2 if i % 3 == 0 else -1 if i % 3 == 1 else 0 for i in range(30)]
        assert recs[0] == {"item": 0, "sample": 0, "completion": "", "answer": items["options"][0][2], "pred": 2,
                           "finish_reason": "stop", "reply": "reasoning_only",
                           "reasoning": f"<answer>{items['options'][0][2]}</answer>"}
        assert json.loads((run / "run.json").read_text())["config"]["answer_from_reasoning"] is True

        before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        refused = subprocess.run(args + ["--base-url", server.base_url, "--no-report"], capture_output=True,
                                 text=True, timeout=300)
        assert refused.returncode == 2 and "answer_from_reasoning: was True, now False" in refused.stderr
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before

        old = json.loads((run / "run.json").read_text())
        del old["config"]["answer_from_reasoning"]  # a run folder from before the flag existed
        (run / "run.json").write_text(json.dumps(old))
        resumed = subprocess.run(args + ["--base-url", server.base_url, "--no-report"], capture_output=True,
                                 text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert "(0 new, 30 resumed, 0 failed)" in resumed.stdout and lines[0] in resumed.stdout


# ------------------------------------------------------------------------------------------------ local engines


def test_hf_backend_says_length_when_max_tokens_cut_the_reply(data, tmp_path):
    """A tiny model whose final norm is zeroed: every logit is 0, so greedy decoding picks token 0 (the pad token,
    decoded as nothing) at every step. With the end-of-sequence token elsewhere it runs to max_tokens ("length");
    told that token 0 ends a sequence, it stops at once ("stop")."""
    from transformers import AutoModelForCausalLM

    from dvmap_verl.training.tiny import build_model, build_tokenizer

    model_dir = tmp_path / "m"
    tok = build_tokenizer(model_dir)
    build_model(model_dir, tok)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.model.norm.weight.data.zero_()
    model.save_pretrained(str(model_dir))
    assert tok.pad_token_id == 0 and tok.eos_token_id == 2
    config = EvalConfig(backend="hf", model=str(model_dir), data=[str(data / "val.parquet")], limit=3,
                        temperature=0.0, max_tokens=3)

    cut = tmp_path / "cut"
    run_eval(make_backend("hf", str(model_dir), config.generation(), batch_size=2), cut, config, quiet=True)
    assert [(r["completion"], r["finish_reason"], r["reply"]) for r in _records(cut)] == [("", "length", "empty")] * 3
    replies = build_report(cut, bootstrap=0, importance=False)["replies"]
    assert replies["all"] == {"replies": 3, **ZERO, "truncated": 3, "empty": 3, "finish_reason_known": 3}

    model.generation_config.eos_token_id = [2, 0]
    model.save_pretrained(str(model_dir))
    stop = tmp_path / "stop"
    run_eval(make_backend("hf", str(model_dir), config.generation(), batch_size=2), stop, config, quiet=True)
    assert [(r["completion"], r["finish_reason"]) for r in _records(stop)] == [("", "stop")] * 3


def test_vllm_backend_passes_the_finish_reason(monkeypatch):
    import types

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class LLM:  # vLLM's CompletionOutput carries text and finish_reason ("stop", "length", "abort")
        def __init__(self, **kw):
            pass

        def chat(self, conversations, params, use_tqdm, chat_template_kwargs):
            return [types.SimpleNamespace(outputs=[
                types.SimpleNamespace(text="x" * k, finish_reason=("stop", "length", None)[k]) for k in range(p.n)])
                for p in params]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    from dvmap_verl.evaluation.backends import GenerationSettings, Request
    from dvmap_verl.evaluation.backends.vllm import VLLMBackend

    backend = VLLMBackend("m", GenerationSettings(), max_model_len=100)
    got = {}
    backend.run([Request(0, s, ({"role": "user", "content": "q"},)) for s in range(3)],
                lambda r, reply: got.__setitem__(r.sample, reply), lambda r, e: None)
    assert got == {0: Reply("", None, "stop", "empty"), 1: Reply("x", None, "length", "text"),
                   2: Reply("xx", None, None, "text")}
