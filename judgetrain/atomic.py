"""Atomic writes: a file or a directory is written under a temporary name beside its target and renamed
into place, so a killed run leaves the old one or the new one, never half of either.

Used for everything judgetrain writes that another step reads back: prepared dirs, manifests, configs,
checkpoint records, exports, reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_staging_dir(parent: Path, prefix: str) -> Path:
    """A fresh temporary dir in ``parent`` with the permissions of an ordinary new dir (mkdtemp's are 0700)."""
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    staging.chmod(0o777 & ~_umask())
    return staging


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends without an
    error and removed when it does not, so a killed run leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    # mkstemp's files are 0600; the result should have an ordinary new file's permissions.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`, synced to disk before the rename."""
    with atomic_path(path) as tmp:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` as JSON lines to ``path`` through :func:`atomic_path`, streamed and synced."""
    with atomic_path(path) as tmp:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def replace_dir(staging: Path, target: Path) -> None:
    """Move a fully written ``staging`` dir to ``target``, replacing what was there.

    Two renames, not one (a directory cannot be renamed over a non-empty one): the old dir is moved
    aside first, so a run killed between them leaves the new dir complete in ``staging`` and the old
    one complete beside ``target``, and a run killed before them leaves ``target`` untouched.
    """
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old)
    else:
        os.replace(staging, target)


__all__ = ["atomic_path", "make_staging_dir", "replace_dir", "write_jsonl_atomic", "write_text_atomic"]
