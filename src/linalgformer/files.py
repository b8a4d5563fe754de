"""Atomic file writes: a file is either the old one or the complete new one, never partial.

Every writer of the package (checkpoints, configs, metrics rewrites, example files, predictions,
reproduce results) goes through :func:`atomic_write`: write to a temporary file in the same
directory, fsync, rename onto the destination, fsync the directory. A destination that is a link or
not a regular file (a device, a FIFO) is refused, never replaced, and a failed write (disk full) is a
UserError that leaves the old file.

Reading is bounded here too: :func:`read_bounded` opens without blocking, refuses anything but a
regular file and reads at most its limit; :func:`parse_json` refuses nesting too deep to handle.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

from linalgformer.errors import UserError

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
    kind = _not_regular(path)
    if kind:
        raise UserError(f"{path} is {kind}: refusing to replace it (name a new or regular file).")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise write_error(path, err) from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)  # after: a writer may replace the file (safetensors makes it 0600)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:  # disk full, quota, file size limit: the old file stays
        raise write_error(path, err) from None
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_lines(path: Path, lines) -> None:
    """Write an iterable of lines (each ended with a newline), atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "w") as handle:
            handle.writelines(line + "\n" for line in lines)
    atomic_write(path, write)


# ----------------------------------------------------------------------------- guarded writes


def _not_regular(path: Path) -> str | None:
    """Why ``path`` may not be written ("a symbolic link", "a FIFO", ...); None if new or a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
    return next((words for test, words in kinds if test(mode)), "not a regular file")


def check_output(path: Path, what: str, protected: tuple[Path, ...] = (), *, sink: bool = False) -> None:
    """Refuse to write ``path`` unless it is new or a regular file (never through a link, never onto a
    device, FIFO or folder) in an existing folder, and is none of the ``protected`` files (a run's
    own files, the inputs of the command). ``sink``: /dev/null is allowed too (for a writer that
    writes into the file it opens, as matplotlib does; never for :func:`atomic_write`, which renames)."""
    path = Path(path)
    if sink and str(path) == os.devnull:
        return
    kind = _not_regular(path)
    if kind:
        raise UserError(f"{what} {path} is {kind}: refusing to write it (name a new or regular file).")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{what}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{what}: {path} is not writable.")
    for other in protected:
        if _same_file(path, Path(other)):
            raise UserError(f"{what} {path} is {other}, a file this command reads or the run's own: "
                            "refusing to overwrite it (name another file).")


def _same_file(path: Path, other: Path) -> bool:
    """Whether ``path`` names ``other`` (the same inode, or the same name in the same folder)."""
    with contextlib.suppress(OSError):
        if path.exists() and other.exists() and os.path.samefile(path, other):
            return True
    with contextlib.suppress(OSError):
        folder, other_folder = path.parent if str(path.parent) else Path("."), other.parent if str(other.parent) else Path(".")
        return path.name == other.name and os.path.samefile(folder, other_folder)
    return False


def write_error(path: Path, err: OSError) -> UserError:
    """A failed write (disk full, quota, read-only filesystem) as one sentence."""
    return UserError(f"cannot write {path}: {err.strerror or err} (nothing already written was replaced).")


def append_text(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` (created if new); never through a link or onto a special file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, FILE_MODE)
    except OSError as err:
        kind = _not_regular(path)
        raise UserError(f"{path} is {kind}: refusing to write it.") if kind else write_error(path, err) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"{path} is {_not_regular(path)}: refusing to write it.")
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        os.close(fd)


def open_lock(path: Path) -> BinaryIO:
    """The lock file ``path`` opened for flock (created if new); a link or special file is refused."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, FILE_MODE)
    except OSError as err:
        kind = _not_regular(path)
        raise UserError(f"the lock file {path} is {kind}: refusing to use it (remove it).") if kind \
            else UserError(f"cannot open the lock file {path}: {err.strerror or err}.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"the lock file {path} is {_not_regular(path)}: refusing to use it (remove it).")
    return os.fdopen(fd, "rb+")


# ----------------------------------------------------------------------------- bounded reads

class UnreadableFile(UserError, ValueError):
    """A file refused by a bounded reader (special, too large, not JSON, nested too deeply): a
    UserError, and a ValueError where callers already treat bad content as one."""


MAX_JSON_BYTES = 16 * 2**20  # a run's JSON files (config, manifest, results) are kilobytes
MAX_JSON_DEPTH = 64  # deeper nesting is refused (none of our JSON goes past 5 levels)


def open_regular(path: Path, what: str, limit: int) -> BinaryIO:
    """``path`` opened for reading, checked first: a regular file (never a FIFO, device or folder,
    which could block or never end) of at most ``limit`` bytes. FileNotFoundError propagates."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, then is refused
    except FileNotFoundError:
        raise
    except OSError as err:
        raise UnreadableFile(f"cannot read {what} {path}: {err.strerror or err}.") from None
    info = os.fstat(fd)
    problem = None if stat.S_ISREG(info.st_mode) else "is not a regular file (a FIFO, device or folder is never read)"
    if problem is None and info.st_size > limit:
        problem = f"is {info.st_size} bytes, more than the {limit} this reader accepts"
    if problem:
        os.close(fd)
        raise UnreadableFile(f"{what} {path} {problem}.")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_bounded(path: Path, what: str, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file ``path`` (see :func:`open_regular`)."""
    with open_regular(path, what, limit) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as err:
            raise UnreadableFile(f"cannot read {what} {path}: {err.strerror or err}.") from None
    if len(data) > limit:  # it grew since it was checked
        raise UnreadableFile(f"{what} {path} is more than the {limit} bytes this reader accepts.")
    return data


def read_stream(stream: BinaryIO, what: str, limit: int) -> bytes:
    """At most ``limit`` bytes of an open stream (standard input): a larger one is refused."""
    size = 0
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a stream without a file (tests)
        info = os.fstat(stream.fileno())
        size = info.st_size if stat.S_ISREG(info.st_mode) else 0
    if size > limit:
        raise UnreadableFile(f"{what} is {size} bytes, more than the {limit} this reader accepts.")
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UnreadableFile(f"{what} is more than the {limit} bytes this reader accepts.")
    return data


def parse_json(text: str | bytes, what: str) -> Any:
    """``json.loads(text)``; nesting deeper than MAX_JSON_DEPTH (or too deep to parse) is a UserError
    (json raises RecursionError), as is text that is not JSON (ValueError)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise UnreadableFile(f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels).") from None
    except (ValueError, UnicodeDecodeError):
        raise UnreadableFile(f"{what} is not valid JSON.") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise UnreadableFile(f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels).")
    return value


def json_depth(value: Any) -> int:
    """How many lists and objects deep ``value`` goes (0 for a number or string), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(path: Path, what: str, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON document in ``path``, read as :func:`read_bounded` and :func:`parse_json` do."""
    return parse_json(read_bounded(path, what, limit), f"{what} {path}")


def check_utf8_path(path: Path, what: str) -> None:
    """Refuse a path whose name is not UTF-8 (Python keeps such bytes as lone surrogates, which the
    weights' writer and JSON cannot store: a run there could never be read back)."""
    try:
        str(Path(path).absolute()).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{what} {os.fsencode(path)!r} has a name that is not valid UTF-8: choose a UTF-8 name.") from None
