"""Shared fixtures. ``../shared`` (the released dev split) sits beside the checkout in CI; tests needing it skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DVMAP_SHARED", REPO.parent / "shared"))
RELEASE_DEV = SHARED / "data" / "dvmap_release" / "dev.parquet"


@pytest.fixture(scope="session")
def release_dev_path() -> Path:
    if not RELEASE_DEV.exists():
        pytest.skip(f"released dev split not found at {RELEASE_DEV} (set DVMAP_SHARED to the shared/ folder)")
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
