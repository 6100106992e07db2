"""Removing the temporary files that a killed write left behind.

Every atomic write here goes through a temporary file renamed into place:
``save_result`` and ``ObjectStore.download_to`` write ``.NAME.<random>.part``
beside the target, the ``file://`` store writes ``.iris-cloud/tmp/*.part``. A
process killed mid-write (SIGKILL, power loss) leaves that file, and nothing
else ever removes it. A write in progress touches its file with every chunk,
so one not modified for :data:`STALE_SECONDS` belongs to no live write.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from iris_cloud.logs import get_logger

__all__ = ["STALE_SECONDS", "remove_stale_temp_files"]

log = get_logger("iris_cloud.tempfiles")

STALE_SECONDS = 3600.0
"""Seconds without a write after which a temporary file is taken as abandoned."""


def remove_stale_temp_files(
    directory: str | os.PathLike[str],
    *,
    older_than: float = STALE_SECONDS,
    hidden_only: bool = True,
    suffixes: tuple[str, ...] = (".part",),
) -> int:
    """Delete temporary files under ``directory`` unmodified for ``older_than`` seconds.

    Temporary files end in one of ``suffixes``; with ``hidden_only`` only
    names starting with ``.`` (the form ``save_result`` uses) count. Only
    regular files are removed and symlinks are not followed, ``directory`` itself
    included (a link there sweeps nothing). Returns how many
    were removed; a file that cannot be removed is logged (by class) and
    skipped. A missing directory has none.
    """
    try:
        top = os.lstat(directory)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(top.st_mode):
        # os.walk would follow a link given as the top (one planted for the
        # store's temp directory) and sweep wherever it points.
        log.warning("not sweeping temporary files: the directory is a link or not a directory")
        return 0
    cutoff = time.time() - older_than
    removed = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if not name.endswith(suffixes) or (hidden_only and not name.startswith(".")):
                continue
            path = Path(root, name)
            try:
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # another process cleaned it, or its write just finished
            except OSError as exc:
                log.warning("cannot remove a stale temporary file: %s", type(exc).__name__)
    if removed:
        log.info("removed %d stale temporary file(s) under %s", removed, directory)
    return removed
