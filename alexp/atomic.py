"""Files written whole or not at all: a temp file in the target's folder, renamed over the target at the end."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temp path beside `path` to write to; when the block ends it replaces `path` in one rename, so
    readers (parallel jobs, a resumed run) never see half a file. On an error the temp file is removed.
    The temp name ends in `suffix`, never in the target's own extension, so a glob for finished files (`*.npz`)
    does not catch a file still being written; numpy writers get an open file (`np.save(f, ...)`), since given
    a name without .npy / .npz they would append it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
