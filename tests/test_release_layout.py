"""The authors' release as they ship it: the clone root, either subfolder or single tables; Arrow folders of many
record batches and shards, parquet of many row groups; outputs that never mix with an earlier set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dvmap_verl.evaluation.evaluate import load_items
from dvmap_verl.data.prepare import OutputExistsError
from dvmap_verl.data.release import ReleaseInputError, discover_release, prepare_release

CORPUS = "Demographic_Value_Alignment/DVMap_Corpus"
BENCH = "Triple-Generalization_Evaluation_Benchmark"
SIZES = {"train": 3000, "dev": 1500, "test": 1100, "Cross-Demographic": 1200, "Cross-Country": 2100,
         "Cross-Value": 1300}
OURS = {"train": "train", "dev": "val", "test": "test", "Cross-Demographic": "cross_demographic",
        "Cross-Country": "cross_country", "Cross-Value": "cross_value"}


def release_rows(tmp_path_factory) -> pd.DataFrame:
    """Synthetic rows with the release's 19 columns (from a synthetic WVS file, prepared without caps)."""
    from dvmap_verl.data import synth
    from dvmap_verl.data.prepare import prepare_wvs
    from dvmap_verl.data.splits import SplitConfig

    work = tmp_path_factory.mktemp("synthetic_release")
    synth.write(synth.generate(12000, seed=3), work / "wvs.parquet")
    prepare_wvs(work / "wvs.parquet", work / "prepared", quiet=True,
                config=SplitConfig(max_profiles_per_country=0, cross_country_max_profiles_per_country=0,
                                   cross_value_max_profiles_per_country=0))
    corpus = pd.read_parquet(work / "prepared" / "corpus.parquet")
    return corpus.drop(columns=["split"]).assign(data_source="wvs")


def write_release(root: Path, rows: pd.DataFrame) -> Path:
    """The release's layout, with what a clone also holds: a verl fork with its own data file, scripts, a README."""
    import datasets

    start = 0
    parts = {}
    for name, n in SIZES.items():
        parts[name] = rows.iloc[start:start + n].reset_index(drop=True)
        start += n
    (root / CORPUS).mkdir(parents=True)
    for name in ("train", "dev", "test"):
        # Many row groups, as any writer of a large table makes.
        pq.write_table(pa.Table.from_pandas(parts[name], preserve_index=False), root / CORPUS / f"{name}.parquet",
                       row_group_size=400)
    for name in ("Cross-Demographic", "Cross-Country", "Cross-Value"):
        ds = datasets.Dataset.from_pandas(parts[name].drop(columns=["data_source"]), preserve_index=False)
        ds.save_to_disk(str(root / BENCH / name), num_shards=2 if name == "Cross-Country" else 1)
    (root / BENCH / "eval_api_parallel.py").write_text("# the authors' evaluation script\n")
    fork = root / "Demographic_Value_Alignment" / "verl"
    (fork / "tests" / "data").mkdir(parents=True)
    (fork / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    pd.DataFrame({"x": [1]}).to_parquet(fork / "tests" / "data" / "unrelated.parquet")
    (root / "README.md").write_text("DVMap\n")
    return root


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("DVMap"), release_rows(tmp_path_factory))


def test_the_fixture_has_the_real_shapes(clone):
    assert pq.ParquetFile(clone / CORPUS / "train.parquet").num_row_groups > 5
    arrow = sorted((clone / BENCH / "Cross-Demographic").glob("*.arrow"))
    with pa.memory_map(str(arrow[0])) as src:
        assert pa.ipc.open_stream(src).read_all().column(0).num_chunks > 1  # record batches of 1,000 rows
    assert len(list((clone / BENCH / "Cross-Country").glob("data-*-of-00002.arrow"))) == 2


def test_clone_root_gives_every_split(clone, tmp_path):
    out = tmp_path / "out"
    stats = prepare_release(clone, out, quiet=True)
    for name, split in OURS.items():
        table = pd.read_parquet(out / f"{split}.parquet")
        assert len(table) == SIZES[name] == stats["splits"][split]["rows"], name
        assert (table["data_source"] == f"dvmap/{split}").all()
    assert [(Path(i["path"]).name, i["rows"]) for i in stats["inputs"]] == [
        ("train.parquet", 3000), ("dev.parquet", 1500), ("test.parquet", 1100), ("Cross-Demographic", 1200),
        ("Cross-Country", 2100), ("Cross-Value", 1300)]
    # Rows come through in order, none lost between chunks or shards.
    import datasets

    bench = pd.read_parquet(out / "cross_country.parquet")
    original = datasets.load_from_disk(str(clone / BENCH / "Cross-Country")).to_pandas()
    assert [m[-1]["content"] for m in bench["prompt"]] == original["prompt"].tolist()
    written = json.loads((out / "stats.json").read_text())["outputs"]
    assert sorted(p.name for p in out.iterdir()) == sorted(written)


@pytest.mark.parametrize("sub, splits", [
    (CORPUS, {"train", "val", "test"}),
    (BENCH, {"cross_demographic", "cross_country", "cross_value"}),
    (f"{BENCH}/Cross-Value", {"cross_value"}),
    (f"{CORPUS}/test.parquet", {"test"}),
])
def test_subfolders_and_single_tables(clone, tmp_path, sub, splits):
    stats = prepare_release(clone / sub, tmp_path / "o", quiet=True)
    assert set(stats["splits"]) == splits


def test_unknown_or_doubled_tables_are_errors_that_name_them(clone, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(clone, root)
    shutil.copytree(root / BENCH / "Cross-Value", root / BENCH / "Cross-Culture")
    with pytest.raises(ReleaseInputError, match=r"not a release split name: .*Cross-Culture"):
        discover_release(root)
    shutil.rmtree(root / BENCH / "Cross-Culture")
    shutil.copy(root / CORPUS / "dev.parquet", root / "dev.parquet")
    with pytest.raises(ReleaseInputError, match=r"two tables for split 'val': .*dev\.parquet and .*dev\.parquet"):
        discover_release(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseInputError, match="no release tables found"):
        discover_release(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ReleaseInputError, match=r"notes\.txt: not a release table"):
        discover_release(tmp_path / "notes.txt")


def test_a_used_output_folder_is_refused_or_replaced_whole(clone, tmp_path):
    out = tmp_path / "out"
    prepare_release(clone, out, quiet=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputExistsError, match=r"already holds a prepared dataset .*--overwrite"):
        prepare_release(clone / BENCH, out, quiet=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    # A killed run's staging folder (its pid is gone) is cleaned up, never left beside the output.
    (out / ".staging-99999999-abc").mkdir()
    (out / ".staging-99999999-abc" / "train.parquet").write_bytes(b"half")
    prepare_release(clone / BENCH, out, overwrite=True, quiet=True)
    assert sorted(p.name for p in out.iterdir()) == [".dvmap-manifest.json", "corpus.parquet", "cross_country.parquet",
                                                     "cross_demographic.parquet", "cross_value.parquet", "stats.json"]
    assert set(pd.read_parquet(out / "corpus.parquet")["split"]) == {"cross_demographic", "cross_country",
                                                                     "cross_value"}


def test_eval_and_baselines_use_the_same_discovery(clone, tmp_path):
    items = load_items([clone])  # as test items: the clone's train split is left out (named, it is read)
    assert items.groupby("split").size().to_dict() == {OURS[k]: v for k, v in SIZES.items() if k != "train"}
    items = load_items([clone], test_items=False)
    assert items.groupby("split").size().to_dict() == {OURS[k]: v for k, v in SIZES.items()}
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "baselines", "--train",
                          str(clone / CORPUS / "train.parquet"), "--test", str(clone / BENCH), "--out",
                          str(tmp_path / "b")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["n_items"] == SIZES["Cross-Demographic"] + SIZES["Cross-Country"] + SIZES["Cross-Value"]
    assert "Warning" not in res.stderr and "warn" not in res.stderr.lower(), res.stderr[-2000:]


def test_cli_lists_every_input_and_refuses_a_used_folder(clone, tmp_path):
    cmd = [sys.executable, "-m", "dvmap_verl.cli", "prepare", "release", "--input", str(clone), "--out",
           str(tmp_path / "o")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    for name, n in SIZES.items():
        assert f"{name}" in res.stdout and f"{n:,} rows" in res.stdout
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and "already holds a prepared dataset" in res.stderr
    assert "Traceback" not in res.stderr
    assert subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True).returncode == 0


def test_real_dev_split_across_the_release_layout(release_dev, tmp_path):
    """The released dev rows, cut into the release's parts, come back byte for byte."""
    root = tmp_path / "DVMap"
    rows = release_dev
    write_parts = {"dev": rows.iloc[:4000], "Cross-Demographic": rows.iloc[4000:]}
    (root / CORPUS).mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(write_parts["dev"], preserve_index=False), root / CORPUS / "dev.parquet",
                   row_group_size=1000)
    import datasets

    datasets.Dataset.from_pandas(write_parts["Cross-Demographic"].drop(columns=["data_source"]),
                                 preserve_index=False).save_to_disk(str(root / BENCH / "Cross-Demographic"))
    out = tmp_path / "out"
    prepare_release(root, out, quiet=True)
    val = pd.read_parquet(out / "val.parquet")
    cd = pd.read_parquet(out / "cross_demographic.parquet")
    users = [m[-1]["content"] for m in pd.concat([val, cd])["prompt"]]
    assert users == release_dev["prompt"].tolist()
    freq = pd.concat([pd.DataFrame(list(val["extra_info"])), pd.DataFrame(list(cd["extra_info"]))])["frequency"]
    assert freq.tolist() == release_dev["frequency"].tolist()


def test_a_partial_clone_gets_the_full_missing_files_table(clone, tmp_path):
    """A clone whose large files were not fetched: train.parquet and the three Cross-*/data-00000-of-00001.arrow
    absent (Cross-Country's first of two shards an LFS pointer). Every gap is named in one table, with the cause and
    what still works; the whole tables are imported; later commands name the import that would make the rest."""
    import shutil

    from dvmap_verl.data.completeness import MissingSplitError, require_split

    root = tmp_path / "DVMap"
    shutil.copytree(clone, root)
    (root / CORPUS / "train.parquet").unlink()
    for name in ("Cross-Demographic", "Cross-Value"):
        (root / BENCH / name / "data-00000-of-00001.arrow").unlink()
    (root / BENCH / "Cross-Country" / "data-00000-of-00002.arrow").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1048576\n")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "prepare", "release", "--input", str(root),
                          "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    table = res.stderr
    assert "the release's clone root" in table
    for line in (f"train              missing                               -  {CORPUS}/train.parquet",
                 f"val                found                             1,500  {CORPUS}/dev.parquet",
                 f"test               found                             1,100  {CORPUS}/test.parquet",
                 f"cross_demographic  incomplete                            -  {BENCH}/Cross-Demographic (absent: "
                 f"data-00000-of-00001.arrow)",
                 f"cross_country      not fetched (git LFS pointer)         -  {BENCH}/Cross-Country (LFS pointer: "
                 f"data-00000-of-00002.arrow)",
                 f"cross_value        incomplete                            -  {BENCH}/Cross-Value (absent: "
                 f"data-00000-of-00001.arrow)"):
        assert line in table, table
    assert (f"missing 4 of 6 tables; files absent: {CORPUS}/train.parquet, {BENCH}/Cross-Demographic/data-00000-of-"
            f"00001.arrow, {BENCH}/Cross-Country/data-00000-of-00002.arrow, {BENCH}/Cross-Value/data-00000-of-"
            f"00001.arrow") in table
    assert "git lfs pull" in table and "without train: training" in table and "still works: validation" in table
    assert sorted(p.name for p in out.glob("*.parquet")) == ["corpus.parquet", "test.parquet", "val.parquet"]
    stats = json.loads((out / "stats.json").read_text())
    assert {e["split"]: e["status"] for e in stats["completeness"]} == {
        "train": "missing", "val": "found", "test": "found", "cross_demographic": "incomplete",
        "cross_country": "not fetched (git LFS pointer)", "cross_value": "incomplete"}
    with pytest.raises(MissingSplitError, match=(
            rf"train\.parquet: evaluate_checkpoint needs the train split, absent here: the release import from "
            rf"{root} found .*train\.parquet missing; fetch it .*git lfs pull.*`dvmap prepare release --input <the "
            rf"clone root> --out {out} --overwrite`")):
        require_split(out, "train", "evaluate_checkpoint")
    assert require_split(out, "val") == out / "val.parquet"
    # The corpus folder alone: train named missing, the benchmark named as outside --input.
    stats = prepare_release(root / CORPUS, tmp_path / "o2", quiet=True)
    assert [(e["split"], e["status"]) for e in stats["completeness"]] == [
        ("train", "missing"), ("val", "found"), ("test", "found"), ("cross_demographic", "not under --input"),
        ("cross_country", "not under --input"), ("cross_value", "not under --input")]
    # A later command names the import that makes what it needs: the checkpoint evaluation on this folder.
    res = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "eval" / "evaluate_checkpoint.py"),
                          str(tmp_path / "ckpt"), str(tmp_path / "o2"), str(tmp_path / "run")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert (f"error: none of cross_demographic.parquet, cross_country.parquet, cross_value.parquet in "
            f"{tmp_path / 'o2'}; {tmp_path / 'o2' / 'cross_demographic.parquet'}: evaluate_checkpoint.py needs the "
            f"cross_demographic split, absent here: the release import from {root / CORPUS} did not cover it "
            f"(Triple-Generalization_Evaluation_Benchmark/Cross-Demographic is outside that --input); run "
            f"`dvmap prepare release --input <the clone root> --out {tmp_path / 'o2'} --overwrite`") in res.stderr
    # Nothing whole under --input: an error carrying the same table, nothing written.
    with pytest.raises(ReleaseInputError, match=r"no release table is whole, nothing imported\n.*benchmark folder"):
        prepare_release(root / BENCH, tmp_path / "o3", quiet=True)
    assert not (tmp_path / "o3").exists()
    # baselines and eval name it too (the README's commands after a release import without train.parquet).
    o2 = tmp_path / "o2"
    for argv, flag in ((["baselines", "--train", str(o2 / "train.parquet"), "--test", str(o2 / "val.parquet"),
                         "--out", str(tmp_path / "b")], "--train"),
                       (["eval", "--backend", "hf", "--model", "x", "--data", str(o2 / "cross_value.parquet"),
                         "--out", str(tmp_path / "e")], "--data")):
        res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", *argv], capture_output=True, text=True)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
        split = "train" if flag == "--train" else "cross_value"
        assert f"{o2 / (split + '.parquet')}: " in res.stderr and f"({flag}) needs the {split} split" in res.stderr
        assert f"`dvmap prepare release --input <the clone root> --out {o2} --overwrite`" in res.stderr
        assert not (tmp_path / argv[-1]).exists()
