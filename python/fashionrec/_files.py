"""Writing files by replacement: a reader that has the old file open or memory-mapped keeps
its bytes (truncating a mapped file in place ends the reader with SIGBUS), and a failed write
never removes or truncates a file the user had."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_counter = itertools.count()


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether paths ``a`` and ``b`` name one file (links and relative paths included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_same(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> None:
    """A ValueError naming both when ``output`` is one of the ``inputs`` (writing it would
    destroy the data being read)."""
    for source in inputs:
        if same_file(output, source):
            raise ValueError(
                f"output {os.fspath(output)!r} is the input file {os.fspath(source)!r}: "
                "writing it would destroy the input; choose another output path"
            )


@contextmanager
def replacing(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """The one way the Python side writes a file a user named: yield a temporary path in
    ``path``'s folder; when the block ends without an error, the temporary file is flushed to
    disk and renamed over ``path``, else it is removed and ``path`` is left as it was (a
    failure never removes or truncates a file the user had). ``path`` equal to one of
    ``inputs`` (files the block reads) is refused first, with a message naming both. The Rust
    writers do the same (``io::replace_with``)."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target}: Is a directory, not a file")
    refuse_same(target, inputs)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{next(_counter)}.partial")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if os.fspath(target) in str(e):
            raise
        # Name the user's file (not the temporary one, or none: numpy's tofile says neither).
        named = OSError(f"{target}: could not be written ({e}); a file already there is left as it was")
        named.errno = e.errno
        raise named from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
