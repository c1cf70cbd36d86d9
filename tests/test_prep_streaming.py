"""``dvmap prepare wvs`` writes splits a row group at a time, with encodings chosen per column, and its fast paths
give what the plain formulas give (issue 26, performance).

Worked values: row-group counts from the split sizes, a frequency table worked by hand, statistics and dictionary
pages read back from the parquet footer; the rest against the plain numpy / pandas formula, written out here."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from collections import deque

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dvmap_verl import allocator
from dvmap_verl.data import dataset, prepare, synth
from dvmap_verl.data.dataset import ParquetStream, prompt_parts, _answer_index
from dvmap_verl.data.distributions import _Lookup, row_max, row_nonzero, row_sums
from dvmap_verl.data.splits import add_frequency
from dvmap_verl.errors import InputError


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    path = tmp_path_factory.mktemp("wvs") / "wvs.csv"
    synth.write(synth.generate(3000, seed=3), path)
    return path


def _tables(folder):
    return {f.name: pq.read_table(f) for f in sorted(folder.glob("*.parquet"))}


def test_small_row_groups_write_the_same_tables_in_many_groups(survey, tmp_path, monkeypatch):
    prepare.prepare_wvs(survey, tmp_path / "whole", quiet=True)
    monkeypatch.setattr(prepare, "ROW_GROUP_ROWS", 64)
    monkeypatch.setattr(dataset, "MAX_PENDING_GROUPS", 1)
    stats = prepare.prepare_wvs(survey, tmp_path / "groups", quiet=True)
    whole, groups = _tables(tmp_path / "whole"), _tables(tmp_path / "groups")
    assert whole.keys() == groups.keys() and len(whole) == 8
    for name in whole:
        assert groups[name].equals(whole[name]), name
    for split, info in stats["splits"].items():
        meta = pq.ParquetFile(tmp_path / "groups" / f"{split}.parquet").metadata
        assert meta.num_rows == info["rows"]
        assert meta.num_row_groups == max(1, math.ceil(info["rows"] / 64)), split
        index = groups[f"{split}.parquet"].column("extra_info").combine_chunks().field("index").to_numpy()
        assert (index == np.arange(info["rows"])).all()  # the row's place in the whole split, across groups
    corpus_groups = sum(max(1, math.ceil(stats["splits"][s]["rows"] / 64)) for s in stats["splits"]
                        if s != "disagreement")
    assert pq.ParquetFile(tmp_path / "groups" / "corpus.parquet").metadata.num_row_groups == corpus_groups


def _column(meta, path):
    names = [meta.row_group(0).column(i).path_in_schema for i in range(meta.num_columns)]
    return meta.row_group(0).column(names.index(path))


def test_statistics_and_dictionary_pages_where_a_reader_uses_them(survey, tmp_path):
    prepare.prepare_wvs(survey, tmp_path / "o", quiet=True)
    train = pq.ParquetFile(tmp_path / "o" / "train.parquet").metadata
    content = _column(train, "prompt.list.element.content")
    assert content.statistics is None and not any("DICT" in e for e in content.encodings)
    qids = pq.read_table(tmp_path / "o" / "train.parquet").column("extra_info").combine_chunks().field("q_id")
    q = _column(train, "extra_info.q_id")
    assert (q.statistics.min, q.statistics.max) == (min(qids.to_pylist()), max(qids.to_pylist()))
    assert any("DICT" in e for e in _column(train, "extra_info.question").encodings)
    assert _column(train, "extra_info.profile_id").statistics is None  # hashes: no reader filters on them
    dist = pq.ParquetFile(tmp_path / "o" / "distributions.parquet").metadata
    assert _column(dist, "counts.list.element").statistics is None
    assert _column(dist, "level").statistics.min == "coarse"


def test_a_later_group_is_cast_to_the_first_groups_schema(tmp_path):
    with ThreadPoolExecutor(2) as pool:
        stream = ParquetStream(tmp_path / "t.parquet", pool, deque())
        stream.write(pa.table({"a": pa.array(["x"]), "n": pa.array([1])}))
        stream.write(pa.table({"a": pa.array([None], pa.null()), "n": pa.array([2])}))  # all null in this group
        stream.close().result()
    assert pq.read_table(tmp_path / "t.parquet").to_pylist() == [{"a": "x", "n": 1}, {"a": None, "n": 2}]


def test_a_group_that_cannot_be_written_fails_the_close(tmp_path):
    with ThreadPoolExecutor(2) as pool:
        stream = ParquetStream(tmp_path / "t.parquet", pool, deque())
        stream.write(pa.table({"a": pa.array([1])}))
        stream.write(pa.table({"a": pa.array(["not a number"])}))
        with pytest.raises(pa.ArrowInvalid):
            stream.close().result()


def test_prompt_parts_of_a_slice_are_the_slices_prompts(survey, tmp_path):
    prepare.prepare_wvs(survey, tmp_path / "o", quiet=True)
    rows = pq.read_table(tmp_path / "o" / "corpus.parquet").to_pandas()
    rows = rows[rows["split"] == "train"].reset_index(drop=True)
    whole = prompt_parts(rows)
    assert whole.part(5, 40).users().to_pylist() == prompt_parts(rows.iloc[5:40]).users().to_pylist()
    assert whole.part(5, 40).users().to_pylist() == rows["prompt"].iloc[5:40].tolist()


def test_lookup_finds_what_a_pandas_index_finds():
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 10_000, 3_000))
    wanted = rng.integers(-5, 10_010, 5_000)
    for k in (keys, keys[::-1].copy(), np.array([], dtype=np.int64)):  # sorted (binary search), unsorted, empty
        assert (_Lookup(k).get_indexer(wanted) == pd.Index(k).get_indexer(wanted)).all()


def test_row_reductions_equal_numpys():
    rng = np.random.default_rng(1)
    m = rng.integers(0, 4, (1000, 8)).astype(np.int32)
    m[::7] = 0
    assert (row_sums(m) == m.sum(axis=1)).all() and row_sums(m).dtype == np.int64
    assert (row_max(m) == m.max(axis=1, initial=0)).all()
    assert (row_nonzero(m) == np.count_nonzero(m, axis=1)).all()
    w = rng.random((5, 8))
    assert np.array_equal(row_sums(w), w.sum(axis=1))  # floats keep numpy's own summation
    empty = np.zeros((0, 8), np.int32)
    assert len(row_sums(empty)) == len(row_max(empty)) == len(row_nonzero(empty)) == 0


def test_frequency_worked_by_hand():
    df = pd.DataFrame({"Country": ["A", "A", "A", "A", "B", "B"], "Q_id": ["Q1"] * 6,
                       "answer": ["x", "x", "y", None, "y", "y"]})
    # A/Q1 has four rows (one without an answer): x 2/4, y 1/4; B/Q1: y 2/2
    assert add_frequency(df).tolist()[:3] == [0.5, 0.5, 0.25]
    assert np.isnan(add_frequency(df).iloc[3]) and add_frequency(df).tolist()[4:] == [1.0, 1.0]


def test_answer_index_and_its_errors():
    df = pd.DataFrame({"Q_id": ["Q1", "Q2", "Q1"], "Options": ["a, b, c", "no, yes", "a, b, c"],
                       "answer": ["c", "no", "a"]})
    assert _answer_index(df).tolist() == [2, 0, 0]
    with pytest.raises(InputError, match=r"row 1 \(Q2\): answer 'maybe' is not one of its options"):
        _answer_index(df.assign(answer=["c", "maybe", "a"]))
    with pytest.raises(InputError, match=r"row 2 \(Q1\): no answer"):
        _answer_index(df.assign(answer=["c", "no", None]))


def _hugepages() -> bool:
    switch = np._core.multiarray._set_madvise_hugepage
    previous = switch(True)
    switch(previous)
    return bool(previous)


def test_batch_memory_restores_numpys_setting_and_can_be_turned_off(monkeypatch):
    before = _hugepages()
    with allocator.batch_memory():
        assert _hugepages() is False
        with allocator.batch_memory():  # nested: one block
            assert _hugepages() is False
        assert _hugepages() is False
    assert _hugepages() is before
    monkeypatch.setenv("DVMAP_BATCH_MEMORY", "0")
    with allocator.batch_memory():
        assert _hugepages() is before


def test_a_users_own_malloc_tuning_is_kept():
    assert allocator.user_tuned_malloc({"MALLOC_ARENA_MAX": "2"})
    assert allocator.user_tuned_malloc({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"})
    assert not allocator.user_tuned_malloc({"GLIBC_TUNABLES": "glibc.pthread.rseq=0", "PATH": "/bin"})


def test_the_command_runs_prepare_in_batch_memory_and_quiet_drops_the_split_lines(survey, tmp_path, monkeypatch, capsys):
    import contextlib

    from dvmap_verl import cli

    entered = []

    @contextlib.contextmanager
    def recording():
        entered.append(_hugepages())  # numpy's setting as the library found it: the recorder changes nothing
        yield

    monkeypatch.setattr(allocator, "batch_memory", recording)
    assert cli.main(["prepare", "wvs", "--input", str(survey), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert len(entered) == 1 and (tmp_path / "o" / "train.parquet").is_file()
    out = capsys.readouterr().out  # --quiet: the synthetic-data note and the input summary, no per-split lines
    assert out.startswith("NOTE: SYNTHETIC DATA") and "respondents read" in out and "train.parquet" not in out


def test_a_file_as_out_and_ctrl_c_are_one_line_each(survey, tmp_path, monkeypatch, capsys):
    from dvmap_verl import cli

    (tmp_path / "afile").write_text("x")
    assert cli.main(["prepare", "wvs", "--input", str(survey), "--out", str(tmp_path / "afile"), "--quiet"]) == 2
    assert f"--out {tmp_path / 'afile'}: is a file; --out names a folder" in capsys.readouterr().err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "prepare_wvs", interrupted)
    assert cli.main(["prepare", "wvs", "--input", str(survey), "--out", str(tmp_path / "o"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "nothing was written (the output folder holds what it held before)" in err and "resume" not in err
