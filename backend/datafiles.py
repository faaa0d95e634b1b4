"""Reading a dataset's files for serving, safe against a folder that changes under the server.

The one way the server reads a file of a dataset folder (manifest, statistics, records, the
images and maps they name): a path relative to the dataset root, opened one component at a
time from the root with O_NOFOLLOW, so that no symbolic link below the root is followed, even
one put in place after startup (`ln -sf /etc/hostname .../thumb.jpg`); with O_NONBLOCK, so that
a FIFO or a device never blocks the read; and served only if fstat on the opened descriptor
says it is a regular file. The dataset root itself may be a link (the operator names it).
POSIX only (dir_fd and O_NOFOLLOW), like the server's event loop.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)


class UnsafeFile(OSError):
    """The path leads through a symbolic link or to something that is not a regular file."""


def parts_of(rel: str) -> list[str]:
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] == "/" or any(p in ("..", ".") for p in parts) or "\\" in rel or "\x00" in rel:
        raise UnsafeFile(errno.EINVAL, "not a plain relative path", rel)
    return list(parts)


def read_dataset_file(root: Path, rel: str) -> bytes:
    """The bytes of ROOT/REL; OSError if missing, UnsafeFile if a link or not a regular file."""
    *folders, name = parts_of(rel)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for folder in folders:
            try:
                inner = os.open(folder, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:  # ELOOP or ENOTDIR: a link (or a file) where a folder should be
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeFile(exc.errno, "a symbolic link or not a folder", rel) from None
                raise
            os.close(fd)
            fd = inner
        try:
            file_fd = os.open(name, FILE_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFile(exc.errno, "a symbolic link", rel) from None
            raise
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb", closefd=True) as f:
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            raise UnsafeFile(errno.EINVAL, "not a regular file", rel)
        return f.read()
