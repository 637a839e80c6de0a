"""Start and stop a real ``optisched serve`` in a subprocess (tests, benchmarks, scripts).

:class:`ServerProcess` runs ``python -m optisched.cli serve --port 0 …``, reads the
``listening on http://HOST:PORT`` line from the log it writes, waits for
``/v1/health`` and can stop the server gently (SIGTERM) or kill it (SIGKILL), and
list its worker processes (Linux ``/proc``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from optisched.client import Client, ServiceError

__all__ = ["ServerProcess", "alive", "children", "wait_gone"]


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux)."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        out += [int(x) for x in text.split()]
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until every pid is gone; returns those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@dataclass
class ServerProcess:
    """A running ``optisched serve`` (127.0.0.1, a free port).

    Attributes
    ----------
    state : Path
        ``--state`` directory.
    log : Path
        File that receives the server's standard output and error (appended).
    args : list of str
        Further ``serve`` options (``--workers``, ``--token-file``, ``--no-auth`` …).
    env : dict
        Extra environment variables.
    url : str
        ``http://127.0.0.1:PORT`` once started.
    """

    state: Path
    log: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> ServerProcess:
        """Start and wait until ``/v1/health`` answers."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        seen = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as fh:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "optisched.cli", "serve", "--host", "127.0.0.1",
                 "--port", "0", "--state", str(self.state), *self.args],
                stdout=fh, stderr=fh, env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[seen:].decode("utf-8", "replace")
            if "listening on http://" in text:
                self.url = text.split("listening on ", 1)[1].split()[0]
                if self._healthy():
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"optisched serve exited {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("optisched serve did not start in time:\n" + self.log.read_text())

    def _healthy(self) -> bool:
        try:
            return bool(Client(self.url).health()["ok"])
        except (OSError, ServiceError):
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """The server's child processes (its solver workers)."""
        return children(self.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> list[int]:
        """Stop the server with ``sig``; returns the worker pids it had."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        pids = self.worker_pids()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return pids

    def client(self, token: str | None = None, timeout: float = 120.0) -> Client:
        """A client of this server."""
        return Client(self.url, token=token, timeout=timeout)
