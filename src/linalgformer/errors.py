"""The one exception type a user can cause: the CLI prints its message and exits with status 2."""

from __future__ import annotations

from typing import Any

MESSAGE_CHARS = 300  # the longest message the CLI prints (longer ones are cut at a word boundary)


class UserError(Exception):
    """Bad input from the user (a flag, a file, a matrix, a checkpoint): one clear sentence."""


def shorten(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, marked with "..."."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "..."


def brief(value: Any, limit: int = 60) -> str:
    """repr(value), shortened for an error message (a value may be a huge YAML structure)."""
    return shorten(repr(value), limit)
