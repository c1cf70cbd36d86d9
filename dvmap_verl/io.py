"""Files that are either complete or absent: atomic single files and staged output folders."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from dvmap_verl.errors import EnvironmentProblem


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
    for d in [*out_dir.glob(STAGING_PREFIX + "*"), *out_dir.glob(".backup-*")]:
        prefix = STAGING_PREFIX if d.name.startswith(STAGING_PREFIX) else ".backup-"
        pid = d.name[len(prefix):].split("-", 1)[0]
        if not d.is_dir() or (pid.isdigit() and _pid_alive(int(pid))):
            continue  # a running process's (ours included)
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


#: The package's own record of the files it wrote in a folder (name -> bytes, sha256), written last by a commit:
#: only files it names, still holding what was written, are ever replaced or removed by a later ``--overwrite``.
MANIFEST = ".dvmap-manifest.json"
#: Present only while a commit moves files; a later run finding it (its pid gone) restores the old set.
JOURNAL = ".dvmap-commit.json"
BACKUP_PREFIX = ".backup-"


class CommitError(EnvironmentProblem, OSError):
    """A staged set could not be moved into place; the folder holds the old set again."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _record(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(path)}


def read_manifest(out_dir: str | Path) -> dict[str, dict[str, Any]] | None:
    """``{file name: {"bytes": int, "sha256": str}}`` from the folder's manifest; None when there is none (or it is
    not one of ours: then nothing in the folder counts as written by the package)."""
    try:
        raw = json.loads((Path(out_dir) / MANIFEST).read_text())
        files = raw["files"]
        if not isinstance(files, dict):
            return None
        return {str(n): dict(v) for n, v in files.items() if _plain_name(str(n)) and isinstance(v, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def owned_files(out_dir: str | Path) -> list[Path]:
    """Files of ``out_dir`` that the manifest names and that still hold exactly what the package wrote (size and
    sha256): a user's file of the same name, or one changed since, is not ours."""
    out = Path(out_dir)
    mine = []
    for name, rec in (read_manifest(out) or {}).items():
        path = out / name
        try:
            st = path.stat()
            if not path.is_file() or st.st_size != rec.get("bytes"):
                continue
            # os.replace keeps the staged file's mtime: an unchanged file matches without reading it.
            if st.st_mtime_ns == rec.get("mtime_ns") or file_sha256(path) == rec.get("sha256"):
                mine.append(path)
        except OSError:
            continue
    return sorted(mine)


def _journal(out: Path, phase: str, backup: Path, new: list[str]) -> None:
    # Written through a temporary named after this process, so a run killed mid-write can be told from a live one.
    tmp = out / f".{JOURNAL}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "phase": phase, "backup": backup.name, "new": new}))
    os.replace(tmp, out / JOURNAL)


def _remove_dead_journal_temps(out: Path) -> None:
    for tmp in out.glob(f".{JOURNAL}.*.tmp"):
        pid = tmp.name[len(JOURNAL) + 2:-len(".tmp")]
        if pid.isdigit() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _roll_back(out: Path, backup: Path, placed: list[str]) -> None:
    """Remove the new files placed so far and move every backed-up old file back."""
    for name in placed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out / name)
    if backup.is_dir():
        for f in sorted(backup.iterdir()):
            os.replace(f, out / f.name)
        shutil.rmtree(backup, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out / JOURNAL)


def recover_interrupted_commit(out_dir: str | Path) -> str | None:
    """Restore the old set when a killed run left a commit half done (its journal names a dead pid); returns what
    was done, or None. A live run's commit is an error: two prepares into one folder at once."""
    out = Path(out_dir)
    _remove_dead_journal_temps(out)  # a journal write a kill cut short
    try:
        state = json.loads((out / JOURNAL).read_text())
        pid, phase, backup, new = int(state["pid"]), state["phase"], str(state["backup"]), list(state["new"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CommitError(f"{out / JOURNAL}: unreadable commit journal ({e}); the folder may hold a mix of two "
                          f"prepared sets: delete the folder and prepare again") from None
    if pid != os.getpid() and _pid_alive(pid):
        raise CommitError(f"{out}: another prepare (pid {pid}) is moving its files into this folder right now")
    if not _plain_name(backup) or not backup.startswith(BACKUP_PREFIX):
        raise CommitError(f"{out / JOURNAL}: names {backup!r} as its backup folder; delete the folder and prepare "
                          f"again")
    _roll_back(out, out / backup, [n for n in new if _plain_name(n)] if phase == "place" else [])
    return f"{out}: a prepare killed while moving its files in was rolled back to the set before it"


def commit_staged(stage: Path, out: Path, remove: list[Path] = ()) -> list[str]:
    """Move every file of ``stage`` into ``out`` and remove ``remove``, all or nothing.

    The old files of those names are first moved to a backup folder; the new ones follow, the manifest (naming
    each new file with its size and sha256) last. A failure rolls back (old set restored, byte for byte); a kill
    leaves a journal from which the next run restores the old set (:func:`recover_interrupted_commit`). Returns the
    names placed. Raises :class:`CommitError` (the cause chained) after a rollback.
    """
    nested = [f.name for f in stage.iterdir() if not f.is_file()]
    if nested:  # a set is a flat folder of files: anything else would be left behind, unsaid
        raise ValueError(f"{stage}: staged sets hold files only, not {nested}")
    names = sorted(f.name for f in stage.iterdir() if f.name != MANIFEST)
    backup = out / f"{BACKUP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    placed: list[str] = []
    try:
        write_json(stage / MANIFEST, {"written_by": "dvmap_verl", "files": {n: _record(stage / n) for n in names}})
        names.append(MANIFEST)
        backup.mkdir()
        _journal(out, "backup", backup, names)
        for name in sorted(set(names) | {p.name for p in remove}):
            if (out / name).is_file():
                os.replace(out / name, backup / name)
        _journal(out, "place", backup, names)
        for name in names:
            os.replace(stage / name, out / name)
            placed.append(name)
        os.unlink(out / JOURNAL)  # the commit point
    except BaseException as e:
        _roll_back(out, backup, placed)
        (out / f".{JOURNAL}.{os.getpid()}.tmp").unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise CommitError(f"{out}: could not move the new files into place ({e}); the folder holds the set "
                              f"it held before") from e
        raise
    shutil.rmtree(backup, ignore_errors=True)
    return names


@contextlib.contextmanager
def staged_dir(out_dir: str | Path, remove: list[Path] | None = None) -> Iterator[Path]:
    """Yield a staging folder; its files move into ``out_dir`` only when the whole block succeeds, together, by
    :func:`commit_staged` (``remove``: files of the old set to delete in the same commit).

    The folder is named after this process, so that a later run can tell a killed run's leftovers (removed) from
    a concurrent run's (left alone).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recover_interrupted_commit(out)
    remove_stale_staging(out)
    stage = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out))
    try:
        yield stage
        commit_staged(stage, out, list(remove or []))
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
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    """``json.dumps``'s ``default`` for numpy scalars and arrays (their Python values)."""
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
