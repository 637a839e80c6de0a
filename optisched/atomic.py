"""Atomic output: a directory or file appears whole or not at all.

Everything is written into a temporary sibling, flushed to disk, then moved into
place by ``os.rename``/``os.replace``, so an interrupted run never leaves a half
plan, bundle or report behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path

__all__ = ["write_dir_atomically", "write_file_atomically"]


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


def write_dir_atomically(out: str | os.PathLike[str], fill: Callable[[Path], None],
                         allowed: Collection[str], keep: Collection[str] = ()) -> Path:
    """Create or replace directory ``out`` with what ``fill(tmp_dir)`` writes.

    Parameters
    ----------
    out : path
        Target directory.
    fill : callable
        Writes the content into the temporary directory it is given.
    allowed : collection of str
        File names ``out`` may already hold (they are replaced).
    keep : collection of str
        File names carried over from an existing ``out`` (e.g. a README).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    FileExistsError
        ``out`` exists and is not a directory, or holds files outside ``allowed``
        and ``keep`` (other than dot-files): they are never clobbered.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a directory")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in allowed
                         and p.name not in keep and not p.name.startswith("."))
        if foreign:
            raise FileExistsError(f"{out} holds files this command does not write "
                                  f"({', '.join(foreign[:5])}); choose an empty or new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        fill(tmp)
        for name in keep:
            if (out / name).is_file():
                shutil.copy2(out / name, tmp / name)
        _fsync_tree(tmp)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_file_atomically(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    The file gets the mode a plain ``open(path, "w")`` would give (0666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
