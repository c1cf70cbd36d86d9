"""VeRL parquet rows from release-format rows (what ``dvmap prepare`` writes and the trainer reads).

Each row: ``data_source`` (``dvmap/<split>``, so verl's validation metrics come out per split), ``prompt`` (chat
messages), ``ability``, ``reward_model: {style: rule, ground_truth}`` and ``extra_info`` with everything the reward
and the evaluation need. Tables are built column-wise in Arrow: a full corpus converts in a fraction of a second.
"""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dvmap_verl.io import atomic_path
from dvmap_verl.data.prompts import system_prompt, template_parts
from dvmap_verl.data.schema import ATTRIBUTE_KEYS, ATTRIBUTE_NAMES, QUESTION_BY_ID
from dvmap_verl.errors import InputError

ABILITY = "pluralistic_value_alignment"
VERL_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")
#: The most text one Arrow string array holds (int32 offsets); past it the arrays are assembled by Arrow.
MAX_STRING_BYTES = 2 ** 31 - 1


def profile_keys(df: pd.DataFrame) -> np.ndarray:
    """Stable id of each row's 11-attribute profile (same profile -> same id, across splits, files and runs)."""
    if not len(df):
        return np.empty(0, dtype=object)
    joined = df[ATTRIBUTE_NAMES[0]].astype(str)
    for a in ATTRIBUTE_NAMES[1:]:
        joined = joined + "\x1f" + df[a].astype(str)
    codes, uniques = pd.factorize(joined.to_numpy(dtype=object))
    keys = np.array([hashlib.sha1(s.encode()).hexdigest()[:16] for s in uniques], dtype=object)
    return keys[codes]


def user_prompts(df: pd.DataFrame, template: str = "release", keep_prompt: bool = False) -> list[str]:
    """The user message of every row (``keep_prompt``: the rows' own ``prompt`` text, as in the release)."""
    return user_prompts_arrow(df, template, keep_prompt).to_pylist()


def user_prompts_arrow(df: pd.DataFrame, template: str = "release", keep_prompt: bool = False) -> pa.Array:
    """:func:`user_prompts` as an Arrow string array: each distinct profile head and question tail is formatted
    once in Python, and the rows are joined in one copy (no per-row Python string)."""
    parts = prompt_parts(df, template, keep_prompt)
    return parts if isinstance(parts, pa.Array) else parts.users()


class PromptParts:
    """Every row's user message as (profile head, question tail) pieces, each distinct piece formatted once.

    :meth:`users` and :meth:`contents` join the pieces straight into an Arrow string buffer (one copy of the
    prompt bytes: a wide scope writes gigabytes of prompt text, where every intermediate copy costs seconds)."""

    def __init__(self, heads: list[str], tails: list[str], head_of: np.ndarray, tail_of: np.ndarray):
        self.heads = np.array([h.encode() for h in heads] + [b""], dtype=object)
        self.tails = np.array([t.encode() for t in tails] + [b""], dtype=object)
        self.head_of, self.tail_of = np.asarray(head_of, np.int64), np.asarray(tail_of, np.int64)

    def __len__(self) -> int:
        return len(self.head_of)

    def part(self, start: int, stop: int) -> "PromptParts":
        """Rows ``start:stop`` (the formatted pieces shared, not formatted again)."""
        out = object.__new__(PromptParts)
        out.heads, out.tails = self.heads, self.tails
        out.head_of, out.tail_of = self.head_of[start:stop], self.tail_of[start:stop]
        return out

    def users(self) -> pa.Array:
        """The user messages, one per row (Arrow strings)."""
        return _joined([(self.heads, self.head_of), (self.tails, self.tail_of)])

    def contents(self, system: str) -> pa.Array:
        """``system``, user message, ``system``, user message, ...: the contents of every row's two messages."""
        heads = np.append(self.heads, np.array([system.encode()], dtype=object))
        n = len(self)
        head_of = np.full(2 * n, len(heads) - 1, dtype=np.int64)
        head_of[1::2] = self.head_of
        tail_of = np.full(2 * n, len(self.tails) - 1, dtype=np.int64)  # the empty tail
        tail_of[1::2] = self.tail_of
        return _joined([(heads, head_of), (self.tails, tail_of)])


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> pa.Array:
    """Row i = ``pieces[codes[i]]`` of each (pieces: bytes, codes) part, concatenated, as Arrow strings; an array
    past 2 GiB of text (int32 offsets) is assembled by Arrow instead (it chunks or refuses as before)."""
    lengths = sum(np.array([len(b) for b in pieces], dtype=np.int64)[codes] for pieces, codes in parts)
    offsets = np.zeros(len(parts[0][1]) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > MAX_STRING_BYTES:
        arrays = [pa.array([b.decode() for b in pieces], pa.string()).take(pa.array(codes))
                  for pieces, codes in parts]
        return pc.binary_join_element_wise(*arrays, "")
    flat = np.stack([pieces[codes] for pieces, codes in parts], axis=1).ravel()
    data = pa.py_buffer(b"".join(flat.tolist()))
    return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)), data)


def prompt_parts(df: pd.DataFrame, template: str = "release", keep_prompt: bool = False) -> "PromptParts | pa.Array":
    """The rows' user messages as :class:`PromptParts` (``keep_prompt``: the rows' own ``prompt`` text, as an
    Arrow string array)."""
    if keep_prompt and "prompt" in df.columns:
        return arrow_strings(df["prompt"].astype(str))
    head, tail = template_parts(template)
    keys = df["profile_key"] if "profile_key" in df else pd.Series(profile_keys(df), index=df.index)
    p_codes, p_first = _first_of_each(keys)
    q_codes, q_first = _first_of_each(df["Question"].astype(str) + "\x1f" + df["Options"].astype(str))
    cols = list(ATTRIBUTE_NAMES)
    heads = [head.format_map(dict(zip(cols, map(str, row))))
             for row in df[cols].iloc[p_first].itertuples(index=False, name=None)]
    tails = [tail.format_map({"Question": str(q), "Options": str(o)})
             for q, o in df[["Question", "Options"]].iloc[q_first].itertuples(index=False, name=None)]
    return PromptParts(heads, tails, p_codes, q_codes)


def repeated(value: str, n: int) -> pa.Array:
    """``[value] * n`` as an Arrow string array, built from buffers (no list of n Python strings)."""
    raw = value.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(raw)
    if offsets[-1] > MAX_STRING_BYTES:
        return pa.array([value] * n, pa.string())
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(raw * n))


def _first_of_each(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values)
    first = np.full(len(uniques), -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # last write wins: the first occurrence
    return codes, first


class StringColumns:
    """``df``'s columns as Arrow strings, each converted once (into ``cache`` when one is given)."""

    def __init__(self, df: pd.DataFrame, cache: dict[str, pa.Array] | None = None):
        self.df, self.cache = df, cache if cache is not None else {}

    def __getitem__(self, column: str) -> pa.Array:
        if column not in self.cache:
            self.cache[column] = arrow_strings(self.df[column])
        return self.cache[column]


def arrow_strings(series: pd.Series) -> pa.Array:
    """A pandas column as one Arrow string array (Arrow-backed columns without a copy; categories decoded; nulls
    stay null)."""
    arr = pa.array(series, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):  # Arrow-backed pandas columns (many record batches or row groups)
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def to_verl_table(df: pd.DataFrame, split: str, *, template: str = "release", system: str = "release",
                  source: str = "dvmap", keep_prompt: bool = False,
                  prompts: "list[str] | pa.Array | PromptParts | None" = None,
                  extra_fields: dict[str, pa.Array] | None = None,
                  strings: dict[str, pa.Array] | None = None, start: int = 0) -> pa.Table:
    """Release-format rows -> a VeRL Arrow table; ``keep_prompt`` uses the rows' own ``prompt`` text verbatim.
    ``start``: the first row's ``extra_info.index`` (its place in the whole split, when ``df`` is one part of it).
    ``extra_fields``: more ``extra_info`` fields (answer ``counts``, ``n``, a distribution ``target``).
    ``strings``: a cache of the rows' columns as Arrow strings, shared with other tables built from ``df``."""
    n = len(df)
    sys_msg = system_prompt(system)
    text = StringColumns(df, strings)
    users = prompts if prompts is not None else prompt_parts(df, template, keep_prompt)
    users = users if isinstance(users, (pa.Array, PromptParts)) else pa.array(users, pa.string())
    answers = text["answer"]
    options = pc.split_pattern(text["Options"], ", ")
    answer_index = _answer_index(df)

    # prompt: list<struct<role, content>>: an optional system message, then the user message.
    if sys_msg:
        roles = _roles(n)
        if isinstance(users, PromptParts):  # joined straight into place: one copy of the prompt bytes
            contents = users.contents(sys_msg)
        else:  # interleave in Arrow, not through a list of Python strings
            both = pa.concat_arrays([pa.array([sys_msg], pa.string()), users])
            order = np.zeros(2 * n, dtype=np.int64)
            order[1::2] = np.arange(1, n + 1)
            contents = both.take(pa.array(order))
        step = 2
    else:
        users = users.users() if isinstance(users, PromptParts) else users
        roles, contents, step = repeated("user", n), users, 1
    messages = pa.StructArray.from_arrays([roles, contents], names=["role", "content"])
    prompt = pa.ListArray.from_arrays(pa.array(np.arange(0, n * step + 1, step, dtype=np.int32)), messages)

    qids = text["Q_id"]
    freq = pd.to_numeric(df["frequency"], errors="coerce").to_numpy(dtype=np.float64) if "frequency" in df \
        else np.full(n, np.nan)
    keys = df["profile_key"] if "profile_key" in df else pd.Series(profile_keys(df), index=df.index)
    scale10 = {q.qid: q.scale10 for q in QUESTION_BY_ID.values()}
    fields = {
        "index": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "split": repeated(split, n),
        "q_id": qids,
        "question": text["Question"],
        "category": text["Category"],
        "options": options,
        "answer": answers,
        "answer_index": pa.array(answer_index, pa.int64()),
        "frequency": pa.array(freq, pa.float64()),
        "scale10": pa.array(df["scale10"].to_numpy(dtype=bool) if "scale10" in df else  # set from the bank
                            df["Q_id"].astype(str).map(scale10).fillna(False).astype(bool).to_numpy()),
        "profile_id": arrow_strings(keys.astype(str)),
    }
    for a in ATTRIBUTE_NAMES:
        fields[ATTRIBUTE_KEYS[a]] = text[a]
    fields.update(extra_fields or {})
    extra = pa.StructArray.from_arrays(list(fields.values()), names=list(fields))
    reward_model = pa.StructArray.from_arrays([repeated("rule", n), answers], names=["style", "ground_truth"])
    return pa.Table.from_arrays(
        [repeated(f"{source}/{split}", n), prompt, repeated(ABILITY, n),
         reward_model, extra],
        names=list(VERL_COLUMNS),
    )


def _roles(n: int) -> pa.Array:
    """``["system", "user"] * n`` as Arrow strings, from buffers."""
    offsets = np.zeros(2 * n + 1, dtype=np.int64)
    offsets[1::2] = np.arange(n) * 10 + 6  # "system" is 6 bytes, "user" 4
    offsets[2::2] = np.arange(1, n + 1) * 10
    return pa.StringArray.from_buffers(2 * n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"systemuser" * n))


def _answer_index(df: pd.DataFrame) -> np.ndarray:
    """Position of each row's answer among its options (checked per distinct (options, answer) pair, found from
    the two columns' codes: no per-row string is built)."""
    o_codes, options_of = pd.factorize(df["Options"].astype(str))
    a_codes, answers = pd.factorize(df["answer"].astype(str))
    if (a_codes < 0).any() or (o_codes < 0).any():
        row = int(np.flatnonzero((a_codes < 0) | (o_codes < 0))[0])
        raise InputError(f"row {row} ({df['Q_id'].iloc[row]}): no {'answer' if a_codes[row] < 0 else 'options'}")
    codes, pairs = pd.factorize(o_codes.astype(np.int64) * len(answers) + a_codes)
    index = np.empty(len(pairs), dtype=np.int64)
    for j, pair in enumerate(pairs):
        options, ans = str(options_of[pair // len(answers)]).split(", "), str(answers[pair % len(answers)])
        if ans not in options:
            row = int(np.flatnonzero(codes == j)[0])
            raise InputError(f"row {row} ({df['Q_id'].iloc[row]}): answer {ans!r} is not one of its options {options}")
        index[j] = options.index(ans)
    return index[codes]


def write_table(table: "pa.Table | pd.DataFrame | pa.Buffer | Future[pa.Buffer]", path: str | Path) -> None:
    """``table`` as parquet at ``path`` (atomically): an Arrow table or a DataFrame is encoded as
    :func:`encode_table` encodes it; a buffer (or a future of one) from :func:`encode_table` is written as it is."""
    import pyarrow.parquet as pq

    if isinstance(table, Future):
        table = table.result()
    with atomic_path(path) as tmp:
        if isinstance(table, pa.Buffer):
            tmp.write_bytes(table)
            return
        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table, preserve_index=False)
        pq.write_table(table, tmp, **_parquet_options(table))


def encode_table(table: pa.Table) -> pa.Buffer:
    """``table`` encoded as :func:`write_table` writes it, in memory (to encode on one thread, write on another)."""
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **_parquet_options(table))
    return sink.getvalue()


#: Rows per row group of a split's or the corpus's parquet: the prompts of one group are built, encoded and freed
#: before the next (a wide scope writes gigabytes of prompt text; memory stays at a few groups' worth).
ROW_GROUP_ROWS = 32768
#: Row groups built ahead of the encoders at most (each holds its prompts until encoded).
MAX_PENDING_GROUPS = 2


class ParquetStream:
    """One parquet file written a row group at a time by a thread pool, in order: :meth:`write` queues a table
    (the encoding settings of :func:`write_table`); :meth:`close` returns a future that finishes the file. The
    caller waits while ``pending`` (shared by the streams of one pool) holds more than
    :data:`MAX_PENDING_GROUPS` queued groups. Later tables are cast to the first one's schema (a column that is
    all null in one group must not change the file's type)."""

    def __init__(self, path: str | Path, pool, pending: "deque[Future]"):
        self.path, self._pool, self._pending = Path(path), pool, pending
        self._last: Future | None = None
        self._writer = None

    def write(self, table: pa.Table) -> None:
        self._last = self._pool.submit(self._write, self._last, table)
        self._pending.append(self._last)
        while len(self._pending) > MAX_PENDING_GROUPS:
            self._pending.popleft().result()

    def _write(self, previous: Future | None, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if previous is not None:
            previous.result()  # the groups before this one, in order (queued earlier: never waits on a later job)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, **_parquet_options(table))
        elif not table.schema.equals(self._writer.schema, check_metadata=False):
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)

    def close(self) -> Future:
        def finish(previous: Future | None) -> None:
            if previous is not None:
                previous.result()
            if self._writer is not None:
                self._writer.close()

        return self._pool.submit(finish, self._last)


def _parquet_options(table: pa.Table) -> dict:
    # Min/max statistics only where a reader can use them (the scalar columns): those of list values and of the
    # prompt text cost a third of the encoding time of a wide prepare and hold truncated long strings.
    leaves = _leaf_columns(table.schema)
    stats = {"write_statistics": [p for p, in_list in leaves if not in_list and p not in NO_STATISTICS]}
    if any(_has_dictionary(t) for t in table.schema.types):
        # Dictionary-encoded columns (distributions.parquet: a million rows of a few dozen strings) go out as
        # parquet dictionary pages; without the stored Arrow schema they read back as plain strings.
        return {"compression": "zstd", "store_schema": False, **stats}
    # Parquet dictionary pages for every column but the prompts: unique long strings, where a dictionary only
    # costs time (the other columns repeat: questions, options, attributes; a fifth faster to encode, and smaller).
    # The stored Arrow schema keeps them plain strings when read back.
    dictionary = [p for p, _ in leaves if p.split(".")[0] not in NO_DICTIONARY]
    return {"use_dictionary": dictionary, "compression": "zstd", **stats}


#: Columns whose min/max no reader filters on: whole prompts (long unique strings) and profile keys (hashes).
NO_STATISTICS = ("prompt", "profile_id", "extra_info.profile_id")
#: Top-level columns of prompt text (no dictionary pages).
NO_DICTIONARY = ("prompt",)


def _leaf_columns(schema: pa.Schema) -> list[tuple[str, bool]]:
    """Parquet's dotted path of every leaf column (lists as ``.list.element``) and whether it is inside a list."""
    out: list[tuple[str, bool]] = []

    def walk(t: pa.DataType, path: str, in_list: bool) -> None:
        if pa.types.is_struct(t):
            for child in t:
                walk(child.type, f"{path}.{child.name}", in_list)
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            walk(t.value_type, f"{path}.list.element", True)
        else:
            out.append((path, in_list))

    for f in schema:
        walk(f.type, f.name, False)
    return out


def _has_dictionary(t: pa.DataType) -> bool:
    return pa.types.is_dictionary(t) or (pa.types.is_list(t) and _has_dictionary(t.value_type))
