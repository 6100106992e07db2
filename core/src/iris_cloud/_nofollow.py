"""Directories below a trusted root, opened without following symbolic links.

Whoever can write into a results directory or a ``file://`` store can plant
a symlink there; a path built from names must then not lead the write (or
the read) elsewhere. :func:`open_below` walks the path one directory at a
time, each opened relative to the one before with ``O_NOFOLLOW``, so there
is no window between checking a path and using it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from iris_cloud.errors import ConfigurationError

__all__ = ["UNSAFE_DIRECTORY", "LinkOnTheWay", "open_below", "open_dirs"]

UNSAFE_DIRECTORY = (
    "a directory on the way under {base} is a symbolic link or not a directory: "
    "nothing is written or read through a link that could lead outside it"
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LinkOnTheWay(OSError):
    """A directory on the way is a symbolic link (:func:`open_dirs` follows none)."""


def open_below(base: Path, parts: Sequence[str], *, create: bool, mode: int = 0o700) -> int:
    """A descriptor of the directory ``base/parts...``; close it when done.

    ``base`` itself is trusted (it may be a symlink); below it every part
    must be a real directory, else :class:`ConfigurationError`. With
    ``create``, missing directories are made (``mode``), but only after the
    existing part of the path was checked, so a refused path creates
    nothing. Without it a missing directory raises ``FileNotFoundError``.
    """
    if create:
        _check_existing(base, parts)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if not parts:
        return fd
    try:
        return open_dirs(fd, parts, create=create, mode=mode)
    except (LinkOnTheWay, NotADirectoryError):
        raise ConfigurationError(UNSAFE_DIRECTORY.format(base=base)) from None
    finally:
        os.close(fd)


def open_dirs(fd: int, parts: Sequence[str], *, create: bool, mode: int = 0o700) -> int:
    """A new descriptor of the directory ``parts...`` below the open directory ``fd``.

    No part is followed if it is a symbolic link (:class:`LinkOnTheWay`); a
    part that is something else than a directory raises
    ``NotADirectoryError``, a missing one ``FileNotFoundError`` unless
    ``create`` makes it (``mode``, whatever the umask). ``fd`` stays open.
    """
    fd = os.dup(fd) if not parts else fd
    opened = -1
    try:
        for part in parts:
            try:
                child = _open_child(part, fd)
            except FileNotFoundError:
                if not create:
                    raise
                made = True
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    made = False
                child = _open_child(part, fd)
                if made:
                    # mkdir's mode passes through the umask; fchmod does not.
                    os.fchmod(child, mode)
            if opened >= 0:
                os.close(opened)
            fd = opened = child
    except BaseException:
        if opened >= 0:
            os.close(opened)
        raise
    return fd


def _check_existing(base: Path, parts: Sequence[str]) -> None:
    path = base
    for part in parts:
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return  # the rest is created, each step checked as it is opened
        if not stat.S_ISDIR(mode):
            raise ConfigurationError(UNSAFE_DIRECTORY.format(base=base))


def _open_child(part: str, fd: int) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
    # O_NOFOLLOW | O_DIRECTORY fails alike for a link and for a file: tell them apart.
    if stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
        raise LinkOnTheWay(errno.ELOOP, "a directory on the way is a symbolic link")
    raise NotADirectoryError(errno.ENOTDIR, "a directory on the way is not a directory")
