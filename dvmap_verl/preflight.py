"""Checks a GPU-only command makes before it starts anything or writes a file.

A command that needs CUDA devices or an optional package (vLLM, lm-eval, verl) calls :func:`require` first; what
is missing becomes one :class:`PreflightError` line naming it and the CPU alternative, which ``dvmap`` prints and
exits 2 on. Nothing is imported to find a package (``importlib.util.find_spec``), so the check takes about as long
as importing torch.
"""

from __future__ import annotations

import importlib.util
from typing import Sequence

from dvmap_verl.errors import EnvironmentProblem


class PreflightError(EnvironmentProblem):
    """A GPU-only command cannot start here: the message names what is missing and what to run instead."""


def cuda_devices() -> int:
    """CUDA devices torch can use (0 without torch or with its CPU build)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def missing_packages(packages: Sequence[str]) -> list[str]:
    """The import names in ``packages`` that are not installed.

    >>> missing_packages(["json", "no_such_package_dvmap"])
    ['no_such_package_dvmap']
    """
    return [p for p in packages if importlib.util.find_spec(p) is None]


def require(what: str, gpus: int = 0, packages: Sequence[str] = (), instead: str = "",
            install: str = "pip install 'dvmap-verl[gpu]'") -> None:
    """Raise :class:`PreflightError` unless ``gpus`` CUDA devices and every package in ``packages`` are present.

    ``what``: the command, as the user typed it (``dvmap eval --backend vllm``); ``instead``: the CPU alternative.
    """
    missing = missing_packages(packages)
    problems = []
    if missing:
        problems.append(f"{', '.join(missing)} not installed ({install})")
    if gpus:
        have = cuda_devices()
        if have < gpus:
            problems.append(f"needs {gpus} CUDA GPU(s), {have} usable here")
    if problems:
        raise PreflightError(f"{what}: " + "; ".join(problems) + (f". On a CPU: {instead}" if instead else ""))
