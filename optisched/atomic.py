"""Atomic output: a directory or file appears whole or not at all.

Everything is written into a temporary sibling, flushed to disk, then moved into
place by ``os.rename``/``os.replace``, so an interrupted run never leaves a half
plan, bundle or report behind.

The rules (``docs/plan-directory.md``):

* A directory is replaced as a whole. It may already hold only the files the
  writer writes (``allowed``) and those it carries over (``keep``); anything
  else, dot-files such as ``.git`` or ``.gitignore`` included, makes the write
  refuse with :class:`FileExistsError` before anything is touched: nothing of the
  user's is ever deleted.
* The new directory gets the mode a plain ``mkdir`` gives (0777 less the umask),
  its files the mode of a plain ``open(path, "w")`` (0666 less the umask).
* A run killed mid-write leaves a hidden sibling ``.<name>.tmp-<pid>-<random>``
  (or ``.<name>.old-<pid>-<random>``). The next write to the same target removes
  such leftovers when their creating process is dead, they are older than the
  current run and they hold nothing but the writer's own files.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path

from optisched.errors import OutputError

__all__ = ["check_dir_target", "remove_stale_temporaries", "write_dir_atomically",
           "write_file_atomically"]

log = logging.getLogger(__name__)

_STARTED = time.time()
"""When this process loaded the module: leftovers of *earlier* runs are older."""
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[A-Za-z0-9_]+")


def _umask() -> int:
    """The process umask (read without changing it where the system allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    """True unless process ``pid`` certainly does not exist."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but is not ours, or cannot tell: keep its files
    return True


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


def remove_stale_temporaries(out: str | os.PathLike[str],
                             contents: Collection[str] | None = None) -> list[Path]:
    """Remove what killed earlier writes of ``out`` left beside it.

    Only hidden siblings named ``.<name>.tmp-<pid>-<random>`` or
    ``.<name>.old-<pid>-<random>`` are candidates, and only when process ``pid``
    is dead, they were last modified before this run started and (for
    directories) they hold nothing but names in ``contents``.

    Parameters
    ----------
    out : path
        The target directory or file.
    contents : collection of str, optional
        Names a leftover directory may hold (None: ``out`` is a file).

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    out = Path(os.path.abspath(out))
    removed: list[Path] = []
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        m = _LEFTOVER.fullmatch(p.name)
        if m is None or m["name"] != out.name or p.is_symlink() or _alive(int(m["pid"])):
            continue
        try:
            if p.stat().st_mtime >= _STARTED:
                continue
            if contents is None:
                if p.is_file():
                    p.unlink()
                    removed.append(p)
            elif p.is_dir() and all(c.name in contents for c in p.iterdir()):
                shutil.rmtree(p)
                removed.append(p)
        except OSError as exc:
            log.warning("could not remove the leftover %s of an earlier run: %s", p, exc)
    for p in removed:
        log.info("removed %s, left by an interrupted earlier run", p)
    return removed


def _refuse_foreign(given: Path, mine: Collection[str]) -> None:
    out = Path(os.path.abspath(given))
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise FileExistsError(f"{given} exists and is not a directory")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in mine)
        if foreign:
            shown = ", ".join(foreign[:5]) + (" …" if len(foreign) > 5 else "")
            raise FileExistsError(
                f"{given} holds files this command does not write ({shown}); it replaces the "
                "directory as a whole and never deletes other files: move them away or "
                "choose an empty or new directory")


def check_dir_target(out: str | os.PathLike[str], allowed: Collection[str],
                     keep: Collection[str] = ()) -> None:
    """Raise now what :func:`write_dir_atomically` would raise about ``out`` later.

    For a check before a long computation: foreign files in ``out`` and a parent
    directory that cannot be written are found before any work is done.

    Raises
    ------
    FileExistsError, OutputError
        As :func:`write_dir_atomically`.
    """
    given = Path(out)
    _refuse_foreign(given, {*allowed, *keep})
    target = Path(os.path.abspath(given))
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(parent))
        os.rmdir(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=parent))
    except OSError as exc:
        raise OutputError(str(given), exc.strerror or str(exc)) from exc


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
        ``out`` exists and is not a directory, or holds anything outside
        ``allowed`` and ``keep`` (dot-files included): it is never clobbered.
    OutputError
        The directory cannot be written (permissions, a read-only file system,
        no space left).
    """
    given = Path(out)
    out = Path(os.path.abspath(given))
    mine = {*allowed, *keep}
    _refuse_foreign(given, mine)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out, mine)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise OutputError(str(given), exc.strerror or str(exc)) from exc
    try:
        fill(tmp)
        for name in keep:
            if (out / name).is_file():
                shutil.copy2(out / name, tmp / name)
        _fsync_tree(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mkdir mode
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(out, old)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise OutputError(str(given), exc.strerror or str(exc)) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return given


def write_file_atomically(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    The file gets the mode a plain ``open(path, "w")`` would give (0666 less the
    umask); temporary files of killed earlier writes are removed (see
    :func:`remove_stale_temporaries`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
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
