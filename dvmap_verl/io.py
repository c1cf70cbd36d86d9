"""Files that are either complete or absent: atomic single files and staged output folders."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds. The temporary name
    carries this process's id, so that :func:`remove_stale_tmp` can clear what a killed process left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a finished file gets the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


STAGING_PREFIX = ".staging-"
TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"^\..+\.(\d+)-[A-Za-z0-9_]+\.tmp$")


def remove_stale_tmp(folder: str | Path) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left in ``folder`` when its process was killed (the pid in
    the name is gone); a live process's are left alone. Returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for f in folder.glob(".*" + TMP_SUFFIX):
        m = _TMP_NAME.match(f.name)
        if m and f.is_file() and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
            removed.append(f)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(out_dir: Path) -> list[Path]:
    """Remove staging folders left in ``out_dir`` by killed runs (their pid, in the name, is gone)."""
    removed = []
    for d in out_dir.glob(STAGING_PREFIX + "*"):
        pid = d.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if not d.is_dir() or (pid.isdigit() and _pid_alive(int(pid))):
            continue  # a running process's (ours included)
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


@contextlib.contextmanager
def staged_dir(out_dir: str | Path) -> Iterator[Path]:
    """Yield a staging folder; its files move into ``out_dir`` only when the whole block succeeds.

    The folder is named after this process, so that a later run can tell a killed run's leftovers (removed) from
    a concurrent run's (left alone).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    stage = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out))
    try:
        yield stage
        for f in sorted(stage.rglob("*")):
            if f.is_file():
                target = out / f.relative_to(stage)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def save_figure(fig: Any, path: str | Path) -> Path:
    """A matplotlib figure as a PNG, written atomically, then closed (every report plot goes through here)."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
