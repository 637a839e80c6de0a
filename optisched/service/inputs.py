"""Request bodies: JSON documents, zipped CSV bundles, and the service's error bodies."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any

from optisched.domain import Problem
from optisched.errors import BundleError, InputError
from optisched.io import BUNDLE_FILES, read_bundle
from optisched.jsondoc import problem_from_json

__all__ = ["ApiError", "bundle_from_zip", "error_body", "json_object", "problem_of_body",
           "request_error"]

ZIP_TYPES = ("application/zip", "application/x-zip-compressed")


class ApiError(Exception):
    """An error answer: HTTP status, a short code, a message and located errors."""

    def __init__(self, status: int, code: str, message: str,
                 errors: list[InputError] | None = None, total: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []
        self.total = len(self.errors) if total is None else total

    @classmethod
    def invalid(cls, exc: BundleError, what: str = "input") -> ApiError:
        """422 with the errors of a :class:`BundleError`."""
        n = exc.total
        return cls(422, "invalid_input", f"invalid {what} ({n} error{'s' if n != 1 else ''})",
                   exc.errors, exc.total)

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.errors, self.total)


def error_body(code: str, message: str, errors: list[InputError] | None = None,
               total: int | None = None) -> dict[str, Any]:
    """The JSON of every error answer (and of the CLI's ``--json`` failures)."""
    errors = errors or []
    return {"ok": False, "error": code, "message": message,
            "errors": [asdict(e) for e in errors],
            "total_errors": len(errors) if total is None else total}


def request_error(column: str | None, value: Any, message: str) -> ApiError:
    """422 for a bad field of the request itself (file ``request``)."""
    shown = None if value is None else (value if isinstance(value, str) else json.dumps(value))
    return ApiError(422, "invalid_input", f"invalid request: {message}",
                    [InputError("request", None, column, shown, message)])


def json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (422 when it is not one)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_input", "the request body is not valid JSON",
                       [InputError("request", None, None, None, f"not valid JSON: {exc}")]
                       ) from None
    if not isinstance(data, dict):
        raise request_error(None, None, "the request body must be a JSON object")
    return data


def bundle_from_zip(data: bytes, tmp_dir: Path, max_bytes: int) -> Problem:
    """Read a zipped CSV bundle (its files at the top or in one folder).

    Raises
    ------
    BundleError
        A zip that cannot be read, holds other paths or unpacks larger than
        ``max_bytes``, or any error of :func:`~optisched.io.read_bundle` (file names
        relative to the bundle).
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BundleError([InputError("bundle.zip", None, None, None,
                                      f"not a zip archive: {exc}")]) from None
    with zf:
        files = [i for i in zf.infolist() if not i.is_dir()]
        names = [PurePosixPath(i.filename) for i in files]
        bad = [str(n) for n in names if n.is_absolute() or ".." in n.parts or len(n.parts) > 2]
        tops = {n.parts[0] for n in names if len(n.parts) == 2}
        if bad or len(tops) > 1 or (tops and any(len(n.parts) == 1 for n in names)):
            raise BundleError([InputError("bundle.zip", None, None, ", ".join(bad[:3]) or None,
                                          "the bundle's files must lie at the top of the zip "
                                          "or in one folder")])
        if sum(i.file_size for i in files) > max_bytes:
            raise BundleError([InputError("bundle.zip", None, None, None,
                                          f"unpacks to more than {max_bytes} bytes")])
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tmp_dir) as d:
            root = Path(d)
            for info, name in zip(files, names, strict=True):
                if name.name in BUNDLE_FILES:
                    (root / name.name).write_bytes(zf.read(info))
            try:
                return read_bundle(root)
            except BundleError as exc:
                raise BundleError([InputError(e.file.replace(str(root) + "/", ""), e.row,
                                              e.column, e.value,
                                              e.message.replace(str(root), "the zip"))
                                   for e in exc.errors], exc.total) from None


def problem_of_body(body: bytes, content_type: str, tmp_dir: Path, max_bytes: int) -> Problem:
    """A problem from a request body: JSON (``Problem.model_dump_json()``) or a zipped bundle.

    Raises
    ------
    ApiError
        415 for another content type, 422 with every located error.
    """
    ctype = content_type.split(";")[0].strip().lower()
    try:
        if ctype in ZIP_TYPES or (ctype in ("application/octet-stream", "")
                                  and body[:2] == b"PK"):
            return bundle_from_zip(body, tmp_dir, max_bytes)
        if ctype in ("application/json", ""):
            return problem_from_json(body)
    except BundleError as exc:
        raise ApiError.invalid(exc, "problem") from None
    raise ApiError(415, "unsupported_media_type", f"content type {ctype!r}: send "
                   "application/json (a problem document) or application/zip (a CSV bundle)")
