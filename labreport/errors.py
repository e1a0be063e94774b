"""The one error type a user sees: what failed, and what to do next."""

from __future__ import annotations


class LabreportError(Exception):
    """A failure the user can act on. The CLI prints it as two lines and exits 2."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class RunInterruptedError(LabreportError):
    """Ctrl-C or SIGTERM, after the cleanup ran; exit code 130, the hint says what was kept."""
