"""The appendix analyses, offline: semantic distance vs cross-value gain with a sentence-transformers model built
here, and general utility through lm-evaluation-harness on a local task over a small JSONL file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

CLI = [sys.executable, "-m", "dvmap_verl.cli"]
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def data(synthetic_data) -> Path:
    return synthetic_data(3000, seed=9)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory, data) -> Path:
    """A tiny BERT with a WordPiece vocabulary trained on the questions, wrapped as a sentence-transformers model."""
    from sentence_transformers import SentenceTransformer, models
    from tokenizers import Tokenizer, models as tmodels, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    work = tmp_path_factory.mktemp("embedder")
    texts = pd.concat([pd.read_parquet(data / f) for f in ("train.parquet", "cross_value.parquet")])
    corpus = sorted({str(e["question"]) for e in texts["extra_info"]})
    tok = Tokenizer(tmodels.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus * 3, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    hf_tok = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                               sep_token="[SEP]", mask_token="[MASK]")
    bert_dir = work / "bert"
    hf_tok.save_pretrained(bert_dir)
    import torch

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(hf_tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(bert_dir)
    word = models.Transformer(str(bert_dir), max_seq_length=128)
    st = SentenceTransformer(modules=[word, models.Pooling(word.get_embedding_dimension(), "mean")])
    st.save(str(work / "st"))
    return work / "st"


def _run(folder: Path, data: Path, right) -> None:
    from dvmap_verl.evaluation.evaluate import PREDICTIONS, EvalConfig, prepare_run

    items = prepare_run(folder, EvalConfig(backend="none", model=folder.name,
                                           data=[str(data / "cross_value.parquet")], limit=700))
    with open(folder / PREDICTIONS, "w") as fh:
        for r in items.itertuples():
            pred = r.truth if right(r) else (r.truth + 1) % len(r.options)
            fh.write(json.dumps({"item": r.item, "sample": 0, "completion": "", "answer": "", "pred": int(pred)})
                     + "\n")


def test_semantic_distance_vs_gain(data, embedder, tmp_path):
    from scipy.stats import pearsonr, spearmanr
    from sentence_transformers import SentenceTransformer

    _run(tmp_path / "base", data, lambda r: r.item % 4 == 0)
    qs = sorted({e["q_id"] for e in pd.read_parquet(data / "cross_value.parquet")["extra_info"]})
    boost = {q: i / len(qs) for i, q in enumerate(qs)}  # each question gains by a different, known amount
    _run(tmp_path / "trained", data, lambda r: r.item % 4 == 0 or (r.item % 97) / 97 < boost[r.q_id])
    res = subprocess.run(CLI + ["analyze", "semantic", "--train", str(data / "train.parquet"), "--cross-value",
                                str(data / "cross_value.parquet"), "--runs", str(tmp_path / "base"),
                                str(tmp_path / "trained"), "--embedder", str(embedder), "--out",
                                str(tmp_path / "sem"), "--bootstrap", "200"],
                         capture_output=True, text=True, timeout=300, env=OFFLINE)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads((tmp_path / "sem" / "semantic.json").read_text())
    table = pd.DataFrame(out["questions"]).set_index("q_id")
    assert sorted(table.index) == qs and "(paper: r = -0.451)" in res.stdout
    # Distances recomputed here from the model's own embeddings.
    model = SentenceTransformer(str(embedder))
    train = pd.DataFrame(list(pd.read_parquet(data / "train.parquet")["extra_info"])).drop_duplicates("q_id")
    cv = pd.DataFrame(list(pd.read_parquet(data / "cross_value.parquet")["extra_info"])).drop_duplicates("q_id")
    a = model.encode(train["question"].tolist(), normalize_embeddings=True)
    for q, text in zip(cv["q_id"], cv["question"]):
        d = 1 - a @ model.encode([text], normalize_embeddings=True)[0]
        assert table.loc[q, "d_min"] == pytest.approx(d.min(), abs=1e-5)
        assert table.loc[q, "d_avg"] == pytest.approx(d.mean(), abs=1e-5)
    for col in ("d_min", "d_avg"):
        assert out[col]["pearson"] == pytest.approx(pearsonr(table[col], table["gain"])[0])
        assert out[col]["spearman"] == pytest.approx(spearmanr(table[col], table["gain"])[0])
        lo, hi = out[col]["pearson_ci95"]
        assert -1 <= lo <= hi <= 1
    assert (tmp_path / "sem" / "semantic_distance_vs_gain.png").stat().st_size > 5000
    assert (table["gain"] >= 0).all() and table["gain"].max() > 0.3


TASK = """task: dvmap_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def test_utility_through_lm_eval_on_a_local_task(tiny_model_dir, tmp_path):
    rows = [{"question": f"Is {i} even?", "choices": ["yes", "no"], "answer": i % 2} for i in range(12)]
    (tmp_path / "tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "dvmap_tiny_mc.yaml").write_text(TASK.format(data=tmp_path / "tiny.jsonl"))
    res = subprocess.run(CLI + ["utility", "--model", str(tiny_model_dir), "--base", str(tiny_model_dir),
                                "--tasks", "dvmap_tiny_mc", "--include-path", str(tasks), "--out",
                                str(tmp_path / "u"), "--device", "cpu", "--batch-size", "4", "--limit", "8"],
                         capture_output=True, text=True, timeout=600, env=OFFLINE)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "u" / "utility.json").read_text())
    (row,) = [r for r in summary["rows"] if r["metric"] == "acc"]
    assert row["task"] == "dvmap_tiny_mc" and 0 <= row["trained"] <= 1
    assert row["delta"] == 0.0 and row["trained_stderr"] > 0  # the same model twice: no difference
    for name in ("trained", "base"):
        results = json.loads((tmp_path / "u" / name / "results.json").read_text())
        assert results["results"]["dvmap_tiny_mc"]["acc,none"] == row["trained"]
    assert "| dvmap_tiny_mc | acc |" in (tmp_path / "u" / "utility.md").read_text()


def test_missing_extra_is_one_line(tmp_path):
    code = ("import sys, builtins; real = builtins.__import__\n"
            "def fake(name, *a, **k):\n"
            "    if name.startswith('lm_eval'): raise ImportError(name)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = fake\n"
            "from dvmap_verl.cli import main; sys.exit(main(sys.argv[1:]))")
    res = subprocess.run([sys.executable, "-c", code, "utility", "--model", "m", "--out", str(tmp_path / "u")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "pip install 'dvmap-verl[analysis]'" in res.stderr and "Traceback" not in res.stderr


def test_utility_names_a_missing_model_folder(tmp_path):
    res = subprocess.run(CLI + ["utility", "--model", str(tmp_path / "no_model"), "--tasks", "arc_easy", "--out",
                                str(tmp_path / "u")], capture_output=True, text=True, timeout=120, env=OFFLINE)
    assert res.returncode == 2 and res.stderr.strip() == (f"dvmap: error: --model {tmp_path / 'no_model'}: no such "
                                                          f"local folder (a Hugging Face repo id looks like org/name)")
    assert not (tmp_path / "u").exists()
