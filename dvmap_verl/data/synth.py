"""SYNTHETIC WVS-Wave-7-shaped data for tests, benchmarks and the CPU demo. Not survey data.

Real variable names and codes, all 18 DVMap countries, polarity-reversed ``…P`` columns for some items, negative
missing codes, answers that really depend on country, religion, income, age and education (so that baselines have
signal), and duplicated profiles, some agreeing and some not. Every file carries the ``DVMAP_SYNTHETIC`` column,
and everything prepared from it is labelled synthetic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dvmap_verl.data import countries, schema
from dvmap_verl.data.bank import Question
from dvmap_verl.io import atomic_path
from dvmap_verl.data.wvs import SYNTHETIC_MARKER
from dvmap_verl.errors import InputError

# Items written polarity-reversed as "<qid>P", as the v6 CSV is reported to do.
REVERSED_ITEMS = ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q8", "Q9", "Q27", "Q46", "Q60", "Q69", "Q131")

# Codes and labels for the synthetic file's religion and language variables. The three codes of each that the
# schema confirms are used as such; the rest are made up and travel as value labels (SPSS/Stata) or a sidecar JSON.
RELIGIONS = {
    10100000: "Roman Catholic; Latin Church;", 50000000: "Islam; nfd", 100000020: "Non-religious",
    20000000: "Protestant; nfd", 30000000: "Eastern Orthodox; nfd", 60000000: "Hindu", 70000000: "Buddhist",
}
LANGUAGES = {1240: "English", 3630: "Russian", 2020: "Japanese", 170: "Arabic", 1880: "German",
             3390: "Portuguese", 3920: "Standard Chinese; Mandarin; Putonghua; Guoyu", 1420: "Hindi",
             3880: "Other", 1300: "French", 3220: "Persian", 3300: "Urdu", 1730: "Indonesian",
             4170: "Vietnamese", 3850: "Spanish", 3970: "Turkish", 1080: "Yoruba"}
COUNTRY_PROFILE = {  # (main languages, religions with weights)
    "USA": ((1240, 3850), {10100000: 3, 20000000: 4, 100000020: 3}),
    "CAN": ((1240, 1300), {10100000: 4, 20000000: 2, 100000020: 4}),
    "GBR": ((1240,), {20000000: 3, 10100000: 1, 100000020: 6}),
    "DEU": ((1880,), {20000000: 3, 10100000: 3, 100000020: 4}),
    "BRA": ((3390,), {10100000: 6, 20000000: 3, 100000020: 1}),
    "RUS": ((3630,), {30000000: 5, 50000000: 1, 100000020: 4}),
    "CHN": ((3920,), {70000000: 1, 100000020: 9}),
    "JPN": ((2020,), {70000000: 4, 100000020: 6}),
    "IND": ((1420, 1240, 3880), {60000000: 8, 50000000: 2}),
    "EGY": ((170,), {50000000: 9, 30000000: 1}),
    "NGA": ((1240, 1080), {50000000: 5, 20000000: 5}),
    "IRN": ((3220,), {50000000: 10}),
    "PAK": ((3300,), {50000000: 10}),
    "IDN": ((1730,), {50000000: 9, 20000000: 1}),
    "VNM": ((4170,), {70000000: 3, 100000020: 7}),
    "AUS": ((1240,), {10100000: 3, 20000000: 3, 100000020: 4}),
    "MEX": ((3850,), {10100000: 8, 100000020: 2}),
    "TUR": ((3970,), {50000000: 10}),
}
DEMOGRAPHIC_VARS = ("Q260", "Q262", "Q273", "Q274", "Q275", "Q279", "Q284", "Q288", "Q289CS9", "Q272")


def generate(n_respondents: int, seed: int = 0, extra_columns: int = 0, dup_share: float = 0.35,
             countries: int | str | None = None, questions: int | None = None, layout: str = "wvs7") -> pd.DataFrame:
    """A synthetic respondent table with WVS variable names and codes.

    ``countries``: how many (the paper's 18 first, then other ISO 3166 countries by numeric code) or a comma list of
    ISO alpha-3 codes; ``questions``: how many value items (the paper's 23 first, then :func:`extra_questions`);
    ``layout``: ``wvs7`` or ``joint`` (the joint EVS/WVS file's names, :func:`to_joint_layout`). The defaults give
    the paper's 18 countries and 23 questions, draw for draw as before these options existed."""
    if n_respondents <= 0:
        raise InputError("n_respondents must be positive")
    if layout not in ("wvs7", "joint"):
        raise InputError(f"unknown layout {layout!r}; known: wvs7, joint")
    rng = np.random.default_rng(seed)
    countries = synthetic_countries(countries)
    items = synthetic_questions(questions)
    c_idx = np.arange(n_respondents) % len(countries)
    rng.shuffle(c_idx)
    n = n_respondents

    demo = {
        "Q260": rng.integers(1, 3, n),
        "Q262": rng.integers(16, 90, n),
        "Q273": rng.choice([1, 2, 3, 4, 5, 6], n, p=[.48, .1, .1, .03, .09, .2]),
        "Q274": rng.choice([0, 1, 2, 3, 4], n, p=[.3, .2, .3, .12, .08]),
        "Q275": rng.choice(np.arange(9), n, p=[.05, .1, .14, .3, .08, .08, .15, .08, .02]),
        "Q279": rng.choice(np.arange(1, 9), n, p=[.35, .1, .1, .17, .1, .06, .1, .02]),
        "Q284": rng.choice([1, 2, 3], n, p=[.25, .6, .15]),
        "Q288": rng.choice(np.arange(1, 11), n, p=[.05, .07, .1, .13, .17, .17, .13, .1, .05, .03]),
    }
    religion = np.empty(n, dtype=np.int64)
    language = np.empty(n, dtype=np.int64)
    for ci, c in enumerate(countries):
        mask = c_idx == ci
        langs, rels = COUNTRY_PROFILE.get(c.iso3) or _generic_profile(c.iso_num)
        language[mask] = rng.choice(langs, mask.sum(), p=_weights(len(langs)))
        codes = np.array(list(rels))
        w = np.array(list(rels.values()), dtype=float)
        religion[mask] = rng.choice(codes, mask.sum(), p=w / w.sum())
    demo["Q289CS9"], demo["Q272"] = religion, language

    # Duplicated profiles: a share of respondents copy the demographics of an earlier respondent of their country,
    # so that ~1/3 of respondents share a profile, as in the real file.
    copies = rng.random(n) < dup_share
    donors = np.arange(n)
    for ci in range(len(countries)):
        idx = np.flatnonzero(c_idx == ci)
        pool = idx[: max(1, len(idx) // 8)]
        take = idx[copies[idx]]
        donors[take] = rng.choice(pool, len(take))
    for k in demo:
        demo[k] = demo[k][donors]
    # A tight profile answers alike (H = 0); a loose one does not.
    noise_scale = np.where(rng.random(n) < 0.5, 0.15, 0.9)[donors]

    frame = {
        "B_COUNTRY": np.array([c.iso_num for c in countries])[c_idx],
        "B_COUNTRY_ALPHA": np.array([c.iso3 for c in countries], dtype=object)[c_idx],
        "A_YEAR": rng.integers(2017, 2023, n),
        "D_INTERVIEW": np.arange(1, n + 1) + 100_000_000,
        "W_WEIGHT": np.round(rng.uniform(0.5, 1.5, n), 4),
    }
    frame.update(demo)
    frame.update(_answers(rng, c_idx, demo, noise_scale, items, len(countries)))
    for k in ("Q273", "Q274", "Q275", "Q279", "Q289CS9"):  # item non-response
        frame[k] = np.where(rng.random(n) < 0.03, rng.choice([-1, -2], n), frame[k])
    frame["Q284"] = np.where(np.isin(frame["Q279"], [4, 5, 6, 7]) & (rng.random(n) < 0.6), -3, frame["Q284"])
    egypt = c_idx == ([c.iso3 for c in countries].index("EGY") if any(c.iso3 == "EGY" for c in countries) else -1)
    for q in ("Q36", "Q69"):  # not asked in Egypt
        col = q + "P" if q in REVERSED_ITEMS else q
        if col in frame:
            frame[col] = np.where(egypt, -4, frame[col])
    for j in range(extra_columns):
        frame[f"X{j:03d}"] = rng.integers(-2, 11, n, dtype=np.int8)
    frame[SYNTHETIC_MARKER] = np.ones(n, dtype=np.int8)
    out = pd.DataFrame(frame)
    return to_joint_layout(out) if layout == "joint" else out


def _weights(k: int) -> np.ndarray:
    w = np.array([0.8] + [0.2 / (k - 1)] * (k - 1)) if k > 1 else np.ones(1)
    return w / w.sum()


def _answers(rng, c_idx, demo, noise_scale, items=schema.QUESTIONS, n_countries=18) -> dict[str, np.ndarray]:
    """Ordinal answers from a latent score: country + religion + income + age + education effects + noise."""
    n = len(c_idx)
    religious = ~np.isin(demo["Q289CS9"], [100000020])
    income = (demo["Q288"] - 5.5) / 4.5
    age = (demo["Q262"] - 45) / 25
    edu = (demo["Q275"] - 4) / 4
    out = {}
    for qi, q in enumerate(items):
        qrng = np.random.default_rng(1000 + qi)
        k = 3 if q.scale10 else q.k
        country_fx = qrng.normal(0, 0.6, n_countries)[c_idx]
        beta = qrng.normal(0, 0.5, 4)
        # The real items' lean (schema.LEANS_TO_FIRST_OPTIONS): important, agree, happy, trust, secure.
        base = {"Q1": -2.6, "Q2": -0.9, "Q3": -0.8, "Q5": -0.8, "Q27": -1.0, "Q46": -0.8, "Q60": -0.9,
                "Q69": -0.8, "Q131": -1.1}.get(q.qid, 0.0)
        z = (k - 1) / 2 + base + country_fx + beta[0] * religious + beta[1] * income + beta[2] * age + beta[3] * edu
        if q.qid == "Q6":
            z = z - 1.2 * religious + 0.6
        if q.qid in ("Q49", "Q50"):
            z = z + 0.6 * income
        opt = np.clip(np.rint(z + rng.normal(0, 1, n) * noise_scale), 0, k - 1).astype(np.int64)
        if q.scale10:
            lo = np.array([1, 4, 8])[opt]
            hi = np.array([4, 8, 11])[opt]
            code = rng.integers(lo, hi)
        else:
            code = opt + 1
        code = np.where(rng.random(n) < 0.02, rng.choice([-1, -2], n), code)
        if q.qid in REVERSED_ITEMS:
            out[q.qid + "P"] = np.where(code >= 0, q.reversed_max - code, code)
        else:
            out[q.qid] = code
    return out


EXTRA_SCALES = (  # option sets of the synthetic items beyond the paper's 23, in turn; binned: a 1-10 scale
    (schema.QUESTION_BY_ID["Q27"].options, False), (("Mentioned", "Not mentioned"), False),
    (schema.QUESTION_BY_ID["Q36"].options, False), (("Low", "Medium", "High"), True),
    (schema.QUESTION_BY_ID["Q1"].options, False), (schema.QUESTION_BY_ID["Q69"].options, False),
)


def extra_questions(n: int) -> tuple[Question, ...]:
    """``n`` synthetic items beyond the paper's 23, WVS-numbered (Q7, Q10, Q11, ...; the paper's ids skipped),
    all training questions; every fourth a 1-10 scale binned Low/Medium/High. Not WVS wording."""
    used = set(schema.QUESTION_BY_ID)
    ids = [f"Q{i}" for i in range(1, 1000) if f"Q{i}" not in used][:n]
    out = []
    for j, qid in enumerate(ids):
        options, binned = EXTRA_SCALES[j % len(EXTRA_SCALES)]
        codes = tuple((c, i) for i, (lo, hi) in enumerate(((1, 3), (4, 7), (8, 10))) for c in range(lo, hi + 1)) \
            if binned else ()
        out.append(Question(qid, "SYNTHETIC", f"Synthetic item {qid} (not WVS wording): how do you see it?",
                            tuple(options), "train", binned, None, qid, None, codes))
    return tuple(out)


def synthetic_questions(n: int | None) -> tuple[Question, ...]:
    """The paper's 23 questions, then extra items up to ``n`` (fewer than 23: the first ``n`` of the paper's)."""
    n = len(schema.QUESTIONS) if n is None else int(n)
    if n <= 0:
        raise InputError(f"--questions must be positive, got {n}")
    return schema.QUESTIONS[:n] + extra_questions(max(0, n - len(schema.QUESTIONS)))


def synthetic_countries(spec: int | str | None) -> tuple[schema.Country, ...]:
    """The countries of a synthetic file: a count (the paper's 18 first, then the other ISO 3166 countries by
    numeric code) or a comma list of ISO alpha-3 codes."""
    import pycountry

    paper = schema.COUNTRIES
    others = sorted((int(c.numeric), c.alpha_3) for c in pycountry.countries
                    if c.alpha_3 not in {p.iso3 for p in paper})
    pool = list(paper) + [schema.Country(countries.name_for_numeric(num), a3, num, "other") for num, a3 in others]
    if spec is None:
        return paper
    text = str(spec).strip()
    if text.isdigit():
        if not 1 <= int(text) <= len(pool):
            raise InputError(f"--countries must be 1..{len(pool)}, got {text}")
        return tuple(pool[:int(text)])
    by_a3 = {c.iso3: c for c in pool}
    codes = [t.strip().upper() for t in text.split(",") if t.strip()]
    bad = [c for c in codes if c not in by_a3]
    if bad or not codes:
        raise InputError(f"--countries: {', '.join(bad) or text!r} not ISO alpha-3 codes (or give a count)")
    return tuple(by_a3[c] for c in dict.fromkeys(codes))


def _generic_profile(iso_num: int) -> tuple[tuple[int, ...], dict[int, int]]:
    """Languages and religion weights of a country outside :data:`COUNTRY_PROFILE` (made up, seeded by its code)."""
    langs = list(LANGUAGES)
    rels = list(RELIGIONS)
    r = np.random.default_rng(iso_num)
    return (langs[iso_num % len(langs)], langs[(iso_num // 7) % len(langs)]), {
        int(c): int(w) for c, w in zip(r.choice(rels, 3, replace=False), r.integers(1, 8, 3))}


def to_joint_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """A WVS-7-named synthetic table under the joint EVS/WVS 2017-2022 file's names (:data:`wvs.JOINT_LAYOUT`):
    cntry (ISO numeric) and cntry_AN (ISO alpha-2), uniqid, X001... demographics, A001... items in original
    (not polarity-reversed) codes except A029/A030 (1 mentioned, 0 not), income split by study (WVS cases in
    X047_WVS7, EVS cases in X047E_EVS5, -4 in the other), the weight as S018. Items the layout does not name
    keep their WVS-7 names."""
    import pycountry

    from dvmap_verl.data.wvs import JOINT_LAYOUT

    f = frame.copy()
    for q in schema.QUESTIONS:  # the joint file holds original codes under its own names
        alias = JOINT_LAYOUT.get(q.qid)
        if alias and q.qid + "P" in f and q.qid not in f:
            p = f.pop(q.qid + "P")
            f[q.qid] = np.where(p >= 0, q.reversed_max - p, p)
    a2 = {c.alpha_3: c.alpha_2 for c in pycountry.countries}
    f["B_COUNTRY_ALPHA"] = f["B_COUNTRY_ALPHA"].map(a2)
    study = np.where(f["B_COUNTRY"].to_numpy() % 2 == 0, 1, 2)  # 1 EVS, 2 WVS (made up)
    income = f.pop("Q288").to_numpy()
    f["X047_WVS7"] = np.where(study == 2, income, -4)
    f["X047E_EVS5"] = np.where(study == 1, income, -4)
    f["study"] = study
    rename = {v: names[0] for v, names in JOINT_LAYOUT.items() if v != "Q288" and v in f}
    rename["W_WEIGHT"] = "S018"
    f = f.rename(columns=rename)
    return f.rename(columns={c: c.lower() for c in ("CNTRY", "CNTRY_AN", "UNIQID")}).rename(
        columns={"cntry_an": "cntry_AN"})


def question_labels(frame: pd.DataFrame) -> tuple[dict[str, str], dict[str, dict[int, str]]]:
    """Variable labels (the question text) and value labels (options, and WVS's missing codes) of the value items
    in ``frame``, as a .sav carries them (so ``dvmap question-bank`` can draft a bank from the file)."""
    missing = {-1: "Don't know", -2: "No answer", -4: "Not asked", -5: "Missing; Not available"}
    items = {q.qid: q for q in synthetic_questions(200)}
    text, values = {}, {}
    for col in frame.columns:
        q = items.get(col) or (items.get(col[:-1]) if col.endswith("P") else None)
        if q is None:
            continue
        rev = col != q.qid
        text[col] = f"{q.text}{' (polarity reversed)' if rev else ''}"
        codes = {(q.reversed_max - c) if rev else c: q.options[i] for c, i in q.codes}
        values[col] = {**{int(c): o for c, o in codes.items()}, **missing} if not q.scale10 else {
            1: "Low (1)", 10: "High (10)", **missing}
    return text, values


def value_labels() -> dict[str, dict[int, str]]:
    """Value labels for the synthetic file's religion and language codes (SPSS/Stata metadata or sidecar JSON)."""
    return {"Q289CS9": dict(RELIGIONS), "Q272": dict(LANGUAGES)}


def write(frame: pd.DataFrame, path: str | Path) -> list[Path]:
    """Write the table as .csv/.parquet (+ ``<file>.labels.json``) or .sav/.dta (labels inside); returns the files."""
    path = Path(path)
    suffix = path.suffix.lower()
    labels = value_labels()
    if "cntry" in frame.columns:  # the joint layout's names
        labels = {"F025": labels["Q289CS9"], "G016": labels["Q272"]}
    written = [path]
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            import pyarrow as pa
            from pyarrow import csv as pacsv

            pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        elif suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix in (".sav", ".dta"):
            import pyreadstat

            writer = pyreadstat.write_sav if suffix == ".sav" else pyreadstat.write_dta
            item_labels, item_values = question_labels(frame)
            kwargs = {"variable_value_labels": {k: {float(c): v for c, v in m.items()}
                                                for k, m in {**labels, **item_values}.items()},
                      "column_labels": [item_labels.get(c) for c in frame.columns]}
            if suffix == ".dta":
                kwargs = {}  # Stata labels need int-valued label sets; pyreadstat writes them for .sav only
            writer(frame, str(tmp), **kwargs)
        else:
            raise InputError(f"{path}: unsupported output type {suffix!r} (use .csv, .parquet, .sav or .dta)")
    if suffix in (".csv", ".parquet", ".dta"):
        side = path.with_name(path.name + ".labels.json")
        with atomic_path(side) as tmp:
            tmp.write_text(json.dumps({k: {str(c): v for c, v in m.items()} for k, m in labels.items()}, indent=1))
        written.append(side)
    return written
