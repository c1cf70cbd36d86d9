"""A regular (non-editable) wheel carries the recipes, the Slurm script and the Hydra plugin, and works."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest


@pytest.mark.slow
def test_wheel_contents_and_recipe_from_installed_wheel(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", repo, "-w", str(tmp_path / "whl")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "absent from the `packages` configuration" not in res.stdout + res.stderr  # every folder declared
    (wheel,) = (tmp_path / "whl").glob("dvmap_verl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("dvmap_verl/recipes/recipe/dvmap_base.yaml", "dvmap_verl/recipes/recipe/dvmap_qwen3_8b.yaml",
                   "dvmap_verl/recipes/recipe/dvmap_llama3.2_3b.yaml", "dvmap_verl/recipes/slurm/dvmap_grpo.sbatch",
                   "dvmap_verl/recipes/README.md", "hydra_plugins/dvmap_verl_searchpath/__init__.py",
                   "dvmap_verl/reward/__init__.py", "dvmap_verl/reward/answers.py", "dvmap_verl/data/prompts.py",
                   "dvmap_verl/evaluation/backends/vllm.py", "dvmap_verl/training/doctor.py",
                   "dvmap_verl/data/question_bank.yaml", "dvmap_verl/commands/question_bank.py",
                   "dvmap_verl/commands/common.py", "dvmap_verl/commands/evaluate.py"):
        assert needed in names, needed
    assert "hydra_plugins/__init__.py" not in names  # a namespace package, shared with other Hydra plugins
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(site)}
    res = subprocess.run([sys.executable, "-c", "import dvmap_verl.recipes as r; print(r.__file__)"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.stdout.startswith(str(site))
    res = subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", "+recipe=dvmap_qwen3_4b", "--cfg", "job"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "experiment_name: dvmap_qwen3_4b" in res.stdout


def test_gpu_extra_installs_without_a_source_build():
    """flash-attn is sdist-only on PyPI (a build needing torch, nvcc and an hour): it must not be in an extra."""
    from importlib.metadata import requires

    reqs = requires("dvmap-verl") or []
    gpu = [r for r in reqs if 'extra == "gpu"' in r]
    assert any(r.startswith("verl[vllm]") for r in gpu), gpu
    assert not any("flash-attn" in r or "flash_attn" in r for r in reqs), reqs
