"""``dvmap analyze semantic``: cross-value transfer against semantic distance (paper Appendix J, Table 12).

Every question text is embedded with a sentence-transformers model. For each cross-value question, d_min is the
cosine distance to the nearest training question and d_avg the mean distance to all of them. Both are correlated
(Pearson and Spearman, with bootstrap intervals over questions) with the question's accuracy gain, trained run minus
base run, on the items both runs share. The paper reports r = -0.198 (d_min) and -0.451 (d_avg) over 7 questions:
with so few points the intervals are wide, and the output says so by printing them.

The paper names no embedding model. The default, ``sentence-transformers/all-MiniLM-L6-v2``, is the library's own
small general-purpose English model (384 dimensions, trained for semantic similarity): the conventional choice
for short-text similarity, cheap on a CPU. Any local folder or hub id works (``--embedder``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from dvmap_verl import stats
from dvmap_verl.io import save_figure, write_json
from dvmap_verl.errors import InputError, MissingPackage

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
PAPER_R = {"d_min": -0.198, "d_avg": -0.451}


def _require():
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingPackage("dvmap analyze semantic needs sentence-transformers: pip install 'dvmap-verl[analysis]'") \
            from None
    return SentenceTransformer


def question_texts(items: pd.DataFrame) -> dict[str, str]:
    return items.drop_duplicates("q_id").set_index("q_id")["question"].astype(str).to_dict()


def semantic_distances(train: dict[str, str], targets: dict[str, str], embedder) -> pd.DataFrame:
    """d_min and d_avg (cosine distance) of each target question to the training questions."""
    t_ids, q_ids = list(train), list(targets)
    emb = embedder.encode([train[q] for q in t_ids] + [targets[q] for q in q_ids], normalize_embeddings=True,
                          convert_to_numpy=True)
    a, b = emb[:len(t_ids)], emb[len(t_ids):]
    dist = 1.0 - b @ a.T
    return pd.DataFrame({"q_id": q_ids, "d_min": dist.min(axis=1), "d_avg": dist.mean(axis=1),
                         "nearest": [t_ids[i] for i in dist.argmin(axis=1)]})


def correlation(x: np.ndarray, y: np.ndarray, bootstrap: int, rng: np.random.Generator) -> dict[str, Any]:
    """Pearson and Spearman r with percentile bootstrap intervals (questions resampled)."""
    from scipy.stats import pearsonr, spearmanr

    out: dict[str, Any] = {"n": int(len(x))}
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return out | {"pearson": float("nan"), "spearman": float("nan")}
    out["pearson"] = float(pearsonr(x, y)[0])
    out["spearman"] = float(spearmanr(x, y)[0])
    def both(sample: np.ndarray) -> list[float]:
        a, b = sample[:, 0], sample[:, 1]
        if np.std(a) == 0 or np.std(b) == 0:  # a constant draw has no correlation: left out
            return [float("nan"), float("nan")]
        return [pearsonr(a, b)[0], spearmanr(a, b)[0]]

    ci = stats.bootstrap(np.column_stack([x, y]), bootstrap, rng=rng, statistic=both)
    for i, k in enumerate(("pearson", "spearman")):
        out[f"{k}_ci95"] = [float(ci[0][i]), float(ci[1][i])] if ci is not None else [float("nan")] * 2
    return out


def analyze_semantic(train: str | Path, cross_value: str | Path, runs: Sequence[str | Path], out_dir: str | Path,
                     embedder: str = DEFAULT_EMBEDDER, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    from dvmap_verl.evaluation.compare import load_run, per_item
    from dvmap_verl.evaluation.evaluate import load_items

    if len(runs) != 2:
        raise InputError(f"--runs takes two run folders, BASE and TRAINED (got {len(runs)})")
    # Data and runs first: a wrong path fails in a second, before an embedding model is loaded.
    train_q = question_texts(load_items([train], test_items=False))
    cv_q = {q: t for q, t in question_texts(load_items([cross_value])).items() if q not in train_q}
    if not cv_q:
        raise InputError(f"{cross_value}: holds no question that is not in {train}")
    base, trained = (per_item(load_run(r)[0]) for r in runs)
    sentence_transformer = _require()
    try:
        model = sentence_transformer(str(embedder))
    except (OSError, ValueError) as e:  # no such repo or folder, no network, not a model folder
        raise InputError(f"--embedder {embedder}: cannot load it with sentence-transformers ({e})") from e
    dist = semantic_distances(train_q, cv_q, model)

    shared = base.index.intersection(trained.index)
    shared = shared[shared.get_level_values("q_id").isin(list(cv_q))]
    gain = (trained.loc[shared, "correct"] - base.loc[shared, "correct"]).groupby(level="q_id").mean()
    items = pd.Series(shared.get_level_values("q_id")).value_counts()
    table = dist.set_index("q_id").join(gain.rename("gain"), how="inner").join(items.rename("items"))
    if table.empty:
        raise InputError("the two runs share no cross-value items: evaluate both on the cross-value split")
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"embedder": str(embedder), "runs": [str(r) for r in runs], "paper_r": PAPER_R,
                           "questions": table.reset_index().to_dict("records")}
    for col in ("d_min", "d_avg"):
        out[col] = correlation(table[col].to_numpy(), table["gain"].to_numpy(), bootstrap, rng)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _scatter(table, out, out_dir / "semantic_distance_vs_gain.png")
    write_json(out_dir / "semantic.json", out)
    return out


def _scatter(table: pd.DataFrame, out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, col in zip(axes, ("d_min", "d_avg")):
        ax.scatter(table[col], table["gain"])
        for q, r in table.iterrows():
            ax.annotate(q, (r[col], r["gain"]), fontsize=8)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_xlabel(f"{col} (cosine distance to the training questions)")
        ax.set_title(f"{col}: r = {out[col].get('pearson', float('nan')):.3f} (paper {PAPER_R[col]})")
    axes[0].set_ylabel("accuracy gain (trained - base)")
    fig.tight_layout()
    save_figure(fig, path)
