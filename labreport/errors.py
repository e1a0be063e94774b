"""The errors a user sees: what failed, and what to do next; each kind carries its exit code.

The CLI prints every one as `error:` and `hint:` (after its details, if any) and exits with the
error's code. Programming errors are not LabreportErrors: they still raise.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError


class LabreportError(Exception):
    """A failure the user can act on: exit code 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "", details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = list(details)  # printed before the error line (diffs, tables)

    def __str__(self) -> str:
        return self.message


class RunInterruptedError(LabreportError):
    """Ctrl-C or SIGTERM, after the cleanup ran; the hint says what was kept."""

    exit_code = 130


class StaleReportError(LabreportError):
    """`render --check`: the committed report is not what the measurements render to."""

    exit_code = 1


class LeftoversError(LabreportError):
    """`clean --check`: labreport left something behind that it does not keep on purpose."""

    exit_code = 1


class SlowdownError(LabreportError):
    """`compare --fail-above`: a runtime is significantly slower than the factor allows."""

    exit_code = 1


class MissingComponentsError(LabreportError):
    """`doctor --strict`: a required component is missing."""

    exit_code = 1


MAX_PROBLEMS_SHOWN = 8


def describe_validation_error(source: str, error: ValidationError) -> str:
    """One line: the file, then every problem (the first few, and how many more), each with its
    field path, what is wrong, and what to write where the fix is one thing."""
    problems = []
    for found in error.errors()[:MAX_PROBLEMS_SHOWN]:
        location = ".".join(str(part) for part in found["loc"]) or "(top level)"
        message = str(found["msg"])
        if found["type"] == "missing":
            message += f" (add {location})"
        elif found["type"] == "extra_forbidden":
            message += " (remove it, or check its spelling)"
        problems.append(f"{location}: {message}")
    more = error.error_count() - len(problems)
    return f"{source}: {'; '.join(problems)}" + (f"; and {more} more" if more > 0 else "")
