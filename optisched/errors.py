"""Input errors that name file, row, column, value and what is valid."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_ERRORS", "BundleError", "InputError", "OutputError"]

MAX_ERRORS = 50
"""At most this many errors are kept; the rest are counted."""
_SHOWN = 60
"""Longer values are shortened when an error is printed (the attribute keeps them whole)."""


@dataclass(frozen=True)
class InputError:
    """One bad value in an input file.

    Attributes
    ----------
    file : str
        File name (as given or relative to the bundle).
    row : int or None
        1-based row, header = row 1 (the line of a TOML file); None when the whole
        file or column is meant.
    column : str or None
        Column name (or TOML key, ``section.key``).
    value : str or None
        The offending value as written.
    message : str
        What is wrong and what would be valid.
    """

    file: str
    row: int | None
    column: str | None
    value: str | None
    message: str

    def __str__(self) -> str:
        toml = self.file.endswith(".toml")
        where = self.file
        if self.row is not None:
            where += f", {'line' if toml else 'row'} {self.row}"
        if self.column:
            where += f", {'key' if toml else 'column'} {self.column}"
        shown = self.value
        if shown is not None and len(shown) > _SHOWN:
            shown = shown[: _SHOWN - 1] + "…"
        val = f": value {shown!r}" if shown is not None else ""
        return f"{where}{val}: {self.message}"


class BundleError(Exception):
    """One or more input errors, collected (capped at :data:`MAX_ERRORS`).

    Attributes
    ----------
    errors : list of InputError
        The kept errors.
    total : int
        How many were found in all.
    """

    def __init__(self, errors: list[InputError], total: int | None = None) -> None:
        self.total = len(errors) if total is None else total
        self.errors = errors[:MAX_ERRORS]
        super().__init__(self.render())

    def render(self) -> str:
        """All kept errors, one per line, with a count of the rest."""
        lines = [str(e) for e in self.errors]
        if self.total > len(self.errors):
            lines.append(f"... and {self.total - len(self.errors)} more errors")
        return "\n".join(lines)


class OutputError(Exception):
    """An output directory or file that cannot be written (permissions, disk, a file in the way).

    Attributes
    ----------
    path : str
        The output asked for.
    reason : str
        Why it cannot be written, in the operating system's words.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot write {path}: {reason}")
