"""Import of the authors' release, and our parquet through verl's own RLHFDataset and reward."""

from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf

from dvmap_verl.data import schema
from dvmap_verl.data.release import ReleaseInputError, prepare_release
from dvmap_verl.reward import compute_score


@pytest.fixture(scope="module")
def imported(tmp_path_factory, release_dev_path, release_dev):
    """A release folder: dev.parquet as is, plus a Cross-Demographic Arrow folder written by datasets."""
    import datasets

    root = tmp_path_factory.mktemp("release")
    (root / "dev.parquet").symlink_to(release_dev_path)
    bench = release_dev.drop(columns=["data_source"]).iloc[:300]
    datasets.Dataset.from_pandas(bench, preserve_index=False).save_to_disk(str(root / "Cross-Demographic"))
    out = tmp_path_factory.mktemp("imported")
    stats = prepare_release(root, out, quiet=True)
    return out, stats


def test_release_import_keeps_prompts_answers_and_frequency(imported, release_dev):
    out, stats = imported
    assert set(stats["splits"]) == {"val", "cross_demographic"}
    val = pd.read_parquet(out / "val.parquet")
    assert len(val) == len(release_dev) == stats["splits"]["val"]["rows"]
    assert stats["splits"]["val"]["profiles"] == 460
    users = [msgs[-1]["content"] for msgs in val["prompt"]]
    assert users == release_dev["prompt"].tolist()
    assert [m[0]["role"] for m in val["prompt"]] == ["system"] * len(val)
    assert val["reward_model"].map(lambda r: r["ground_truth"]).tolist() == release_dev["answer"].tolist()
    extra = pd.DataFrame(list(val["extra_info"]))
    assert extra["frequency"].tolist() == release_dev["frequency"].tolist()
    assert extra["options"].map(", ".join).tolist() == release_dev["Options"].tolist()
    assert (extra["split"] == "val").all() and (val["data_source"] == "dvmap/val").all()
    cd = pd.read_parquet(out / "cross_demographic.parquet")
    assert len(cd) == 300 and (cd["data_source"] == "dvmap/cross_demographic").all()
    corpus = pd.read_parquet(out / "corpus.parquet")
    assert list(corpus.columns) == [*schema.RELEASE_COLUMNS, "data_source", "split"]


def test_release_answers_score_full_marks(imported):
    out, _ = imported
    val = pd.read_parquet(out / "val.parquet").head(500)
    for row in val.to_dict("records"):
        truth = row["reward_model"]["ground_truth"]
        completion = f"<reasoning>\nbecause\n</reasoning>\n<answer>\n{truth}\n</answer>"
        assert compute_score(row["data_source"], completion, truth, row["extra_info"])["acc"] == 1.0


def test_release_input_errors(tmp_path, release_dev):
    with pytest.raises(ReleaseInputError, match="no such file"):
        prepare_release(tmp_path / "none", tmp_path / "o")
    bad = tmp_path / "dev.parquet"
    release_dev.drop(columns=["Options"]).head(5).to_parquet(bad)
    with pytest.raises(ReleaseInputError, match=r"dev\.parquet: missing release column\(s\) \['Options'\]"):
        prepare_release(bad, tmp_path / "o")
    wrong = release_dev.head(5).copy()
    wrong.loc[2, "answer"] = "Maybe"
    wrong.to_parquet(bad)
    with pytest.raises(ReleaseInputError, match="row 2: answer 'Maybe'"):
        prepare_release(bad, tmp_path / "o")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize("thinking", [False, True])
def test_rlhf_dataset_loads_our_parquet(imported, tiny_tokenizer_dir, thinking):
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out, _ = imported
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    config = OmegaConf.create({
        "prompt_key": "prompt", "max_prompt_length": 4096, "filter_overlong_prompts": True,
        "truncation": "error", "apply_chat_template_kwargs": {"enable_thinking": thinking},
        "filter_overlong_prompts_workers": 1, "cache_dir": str(out / "cache"),
    })
    ds = RLHFDataset(str(out / "cross_demographic.parquet"), tok, config)
    assert len(ds) == 300
    item = ds[0]
    assert item["data_source"] == "dvmap/cross_demographic"
    assert item["reward_model"]["ground_truth"] in list(item["extra_info"]["options"])
    msgs = list(item["raw_prompt"])
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True,
                                   **config.apply_chat_template_kwargs)
    assert "**Question**: " in text and text.startswith("<|im_start|>system\nRespond in the following format")
    assert text.endswith("<think>\n\n</think>\n\n") is (not thinking)
    # A tight length limit filters overlong prompts through verl's own filter.
    short = RLHFDataset(str(out / "cross_demographic.parquet"), tok,
                        OmegaConf.merge(config, {"max_prompt_length": 16}))
    assert len(short) == 0


def test_cli_prepare_release(release_dev_path, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "rel"
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "prepare", "release", "--input",
                          str(release_dev_path), "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(pd.read_parquet(out / "val.parquet")) == 7183
    bad = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "prepare", "release", "--input",
                          str(tmp_path / "missing"), "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and "missing: no such file or folder" in bad.stderr
