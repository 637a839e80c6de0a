"""Settings of ``optisched serve``: address, workers, state directory, tokens and limits."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TOKEN_ENV", "ConfigError", "ServiceConfig", "is_loopback", "read_tokens"]

TOKEN_ENV = "OPTISCHED_TOKEN"
"""Environment variable holding one bearer token (beside or instead of ``--token-file``)."""


class ConfigError(ValueError):
    """A setting that does not allow the server to start (the CLI exits 1 with it)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_tokens(token_file: Path | None, env: dict[str, str] | None = None) -> list[str]:
    """Bearer tokens: one per line of ``token_file`` (blank lines and ``#`` comments
    skipped) and the value of :data:`TOKEN_ENV`.

    Raises
    ------
    ConfigError
        A token file that cannot be read, or a token shorter than 16 characters or
        with white space in it.
    """
    env = dict(os.environ) if env is None else env
    tokens: list[str] = []
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"--token-file {token_file}: {exc.strerror or exc}") from None
        for k, line in enumerate(lines, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                _check_token(text, f"{token_file}, line {k}")
                tokens.append(text)
    if env.get(TOKEN_ENV, "").strip():
        text = env[TOKEN_ENV].strip()
        _check_token(text, TOKEN_ENV)
        tokens.append(text)
    return tokens


def _check_token(token: str, where: str) -> None:
    # the token itself is never part of a message
    if len(token) < 16:
        raise ConfigError(f"{where}: a token needs at least 16 characters")
    if any(c.isspace() for c in token):
        raise ConfigError(f"{where}: a token must not contain white space")


@dataclass
class ServiceConfig:
    """What the server needs to start.

    Attributes
    ----------
    host, port : str, int
        Address to listen on.
    workers : int
        Solver worker processes.
    state_dir : Path
        Directory of the SQLite state (``state.sqlite``) and temporary files.
    tokens : list of str
        Accepted bearer tokens; empty only with ``auth`` False.
    auth : bool
        False (``--no-auth``): no token is asked for; allowed on a loopback address only.
    max_body_bytes : int
        Largest request body [bytes]; larger ones get 413.
    max_time_limit : float
        Cap on every solve's and session update's time limit [s].
    default_time_limit : float
        Time limit of a solve that gives none [s] (capped too).
    kill_factor, kill_slack : float
        A solve still running after ``kill_factor × time_limit + kill_slack`` seconds
        is killed (status ``error``).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    state_dir: Path = field(default_factory=lambda: Path("optisched-state"))
    tokens: list[str] = field(default_factory=list)
    auth: bool = True
    max_body_bytes: int = 32 * 1024 * 1024
    max_time_limit: float = 300.0
    default_time_limit: float = 10.0
    kill_factor: float = 2.0
    kill_slack: float = 30.0

    def check(self) -> None:
        """Raise :class:`ConfigError` for settings the server must refuse."""
        if self.auth and not self.tokens:
            raise ConfigError(f"no token: give --token-file FILE (one token per line) or set "
                              f"{TOKEN_ENV}; --no-auth is allowed on a loopback address only")
        if not self.auth and not is_loopback(self.host):
            raise ConfigError(f"--no-auth is refused on {self.host}: without a token only a "
                              "loopback address (127.0.0.1, ::1, localhost) may be used")
        if self.workers < 1:
            raise ConfigError("--workers must be >= 1")
        if self.max_body_bytes < 1024:
            raise ConfigError("--max-body must be at least 1024 bytes")
        if not (self.max_time_limit > 0 and self.default_time_limit > 0):
            raise ConfigError("time limits must be > 0")

    def cap(self, time_limit: float | None) -> tuple[float, bool]:
        """The time limit a solve gets and whether the cap cut it."""
        asked = self.default_time_limit if time_limit is None else time_limit
        return (min(asked, self.max_time_limit), asked > self.max_time_limit)
