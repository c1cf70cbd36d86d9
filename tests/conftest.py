"""Shared fixtures. ``../shared`` (the released dev split) sits beside the checkout; tests needing it skip without
it, except in CI (``CI=true``), where its absence fails them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One OpenMP/BLAS thread per process (tests and the subprocesses they start inherit it) unless the caller chose:
# the tiny models' ops are too small to gain from more, and with Ray workers or a second process on a 2-core
# machine, spinning threads made one end-to-end test 196 s instead of 36 s (same assertions).
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DVMAP_SHARED", REPO.parent / "shared"))
RELEASE_DEV = SHARED / "data" / "dvmap_release" / "dev.parquet"


def _in_ci() -> bool:
    """CI sets CI=true (GitHub Actions, GitLab, most others); there a missing release split is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def release_dev_path() -> Path:
    if not RELEASE_DEV.exists():
        msg = f"released dev split not found at {RELEASE_DEV} (set DVMAP_SHARED to the shared/ folder)"
        if _in_ci():
            pytest.fail(msg + "; in CI (CI=true) the tests that need it must run, not skip", pytrace=False)
        pytest.skip(msg)
    return RELEASE_DEV


@pytest.fixture(scope="session")
def release_dev(release_dev_path):
    import pandas as pd

    return pd.read_parquet(release_dev_path)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    from dvmap_verl.training.tiny import build_tokenizer

    out = tmp_path_factory.mktemp("tiny_tokenizer")
    build_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from dvmap_verl.training.tiny import build_model, build_tokenizer

    out = tmp_path_factory.mktemp("tiny_model")
    tok = build_tokenizer(out)
    build_model(out, tok)
    return out


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """A factory of prepared DVMap folders from SYNTHETIC WVS files, made once per (respondents, seed, split caps)."""
    from dvmap_verl.data import synth
    from dvmap_verl.data.prepare import prepare_wvs
    from dvmap_verl.data.splits import SplitConfig

    made: dict = {}

    def make(respondents: int = 3000, seed: int = 0, **split) -> Path:
        key = (respondents, seed, tuple(sorted(split.items())))
        if key not in made:
            work = tmp_path_factory.mktemp("synthetic")
            synth.write(synth.generate(respondents, seed=seed), work / "wvs.parquet")
            prepare_wvs(work / "wvs.parquet", work / "data", quiet=True, config=SplitConfig(**split))
            made[key] = work / "data"
        return made[key]

    return make
