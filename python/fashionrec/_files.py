"""Writing files by replacement: a reader that has the old file open or memory-mapped keeps
its bytes (truncating a mapped file in place ends the reader with SIGBUS)."""

from __future__ import annotations

import itertools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_counter = itertools.count()


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; when the block ends without an error, the
    temporary file is flushed to disk and renamed over ``path``, else it is removed and
    ``path`` is left as it was. The Rust writers do the same (``io::write_replacing``)."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target}: Is a directory, not a file")
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{next(_counter)}.partial")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
