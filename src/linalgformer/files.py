"""Atomic file writes: a file is either the old one or the complete new one, never partial.

Every writer of the package (checkpoints, configs, metrics rewrites, example files, predictions,
reproduce results) goes through :func:`atomic_write`: write to a temporary file in the same
directory, fsync, rename onto the destination, fsync the directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable

TEMP_SUFFIX = ".tmp"  # atomic_write's temporary files: ".{name}.XXXXXXXX.tmp"


def _file_mode() -> int:
    """0o666 less the process umask (mkstemp creates 0o600 files; renamed files should not be)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then fsync and rename onto ``path``; nothing partial is left."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)  # after: a writer may replace the file (safetensors makes it 0600)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def fsync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_lines(path: Path, lines) -> None:
    """Write an iterable of lines (each ended with a newline), atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "w") as handle:
            handle.writelines(line + "\n" for line in lines)
    atomic_write(path, write)
