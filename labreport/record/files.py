"""Reading a measurement file: bounded, strict, every number within what measure writes, every
failure one error naming the file and the field. The schema is models.py."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from pydantic import ValidationError

from labreport.errors import LabreportError, describe_validation_error
from labreport.host import fsutil
from labreport.record.models import (
    READABLE_VERSIONS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    Measurement,
)

# Numbers a measurement file can hold: what measure writes (counts, nanoseconds, bytes) fits in
# 64 bits and floats are finite; anything else is refused while parsing, before any arithmetic.
MAX_INT = 2**63 - 1


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > MAX_INT:
        raise ValueError(f"the number {text[:24]}{'…' if len(text) > 24 else ''} is out of range")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:24]} is out of range")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not a number a measurement holds")


MAX_FILE_BYTES = 512 << 20  # a measurement of 100,000 samples is about 30 MB


def load_measurement(path: Path) -> Measurement:
    return read_measurement(path)[0]


def read_measurement(path: Path) -> tuple[Measurement, str]:
    """Read and validate one file, strictly (no value coerced: `true` or "5" is not a count);
    every failure names the file and the field. Returns it with the sha256 of the bytes read."""
    if path.is_dir():
        raise LabreportError(f"{path}: not a regular file", "pass a measurement file")
    data = fsutil.read_bounded(path, MAX_FILE_BYTES, "measurement file")
    try:
        raw = json.loads(
            data.decode("utf-8"),
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, and numbers refused
        raise LabreportError(
            f"{path}: not valid JSON: {error}", "restore the file or measure again"
        ) from error
    except RecursionError as error:
        raise LabreportError(
            f"{path}: nested too deeply to be a measurement file", "pass a file 'measure' wrote"
        ) from error
    if not isinstance(raw, dict) or raw.get("schema_name") != SCHEMA_NAME:
        raise LabreportError(
            f"{path}: not a labreport measurement file (schema_name is not {SCHEMA_NAME!r})",
            "pass a file written by 'labreport measure'",
        )
    version = raw.get("schema_version")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or version not in READABLE_VERSIONS
    ):
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise LabreportError(
            f"{path}: schema_version {version!r}, this labreport reads {SCHEMA_VERSION}",
            "upgrade labreport" if newer else "measure again with this labreport",
        )
    try:
        return Measurement.model_validate(raw, strict=True), hashlib.sha256(data).hexdigest()
    except ValidationError as error:
        raise LabreportError(
            describe_validation_error(str(path), error), "restore the file or measure again"
        ) from error
