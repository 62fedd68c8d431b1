#!/usr/bin/python3
"""A pass-through FUSE file system that can turn read-only under open files.

Usage: ro_switch_fs.py BACKING_DIR MOUNTPOINT FLAG_FILE

Every operation is passed to BACKING_DIR. While FLAG_FILE exists, every
operation that would change the disk fails with EROFS, as on an SD card the
kernel remounted read-only after errors (errors=remount-ro): opening for
write, writing through a descriptor opened before, fsync, create, unlink,
truncate, rename. Reads go on. Removing FLAG_FILE makes it writable again.

Why FUSE: `mount -o remount,ro` of a tmpfs or a bind mount is refused
(EBUSY) while a process holds a file open for writing, which is exactly the
case to test; the kernel's own error remount is not reachable from a test.
"""

import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations


class ReadOnlySwitch(Operations):
    def __init__(self, root, flag):
        self.root = root
        self.flag = flag

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _deny_if_ro(self):
        if os.path.exists(self.flag):
            raise FuseOSError(errno.EROFS)

    # --- reads -----------------------------------------------------------
    def access(self, path, mode):
        if mode & os.W_OK:
            self._deny_if_ro()
        if not os.access(self._p(path), mode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        st = os.lstat(self._p(path))
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime",
                "st_nlink", "st_size", "st_uid")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def statfs(self, path):
        st = os.statvfs(self._p(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            self._deny_if_ro()
        return os.open(self._p(path), flags)

    def release(self, path, fh):
        os.close(fh)

    # --- writes ----------------------------------------------------------
    def create(self, path, mode, fi=None):
        self._deny_if_ro()
        return os.open(self._p(path), os.O_RDWR | os.O_CREAT, mode)

    def write(self, path, data, offset, fh):
        self._deny_if_ro()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._deny_if_ro()
        with open(self._p(path), "r+b") as f:
            f.truncate(length)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        self._deny_if_ro()
        os.fsync(fh)

    def fsyncdir(self, path, datasync, fh):
        self._deny_if_ro()

    def unlink(self, path):
        self._deny_if_ro()
        os.unlink(self._p(path))

    def mkdir(self, path, mode):
        self._deny_if_ro()
        os.mkdir(self._p(path), mode)

    def rmdir(self, path):
        self._deny_if_ro()
        os.rmdir(self._p(path))

    def rename(self, old, new):
        self._deny_if_ro()
        os.rename(self._p(old), self._p(new))

    def chmod(self, path, mode):
        self._deny_if_ro()
        os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        self._deny_if_ro()
        os.chown(self._p(path), uid, gid)

    def utimens(self, path, times=None):
        self._deny_if_ro()
        os.utime(self._p(path), times)


if __name__ == "__main__":
    backing, mountpoint, flag = sys.argv[1:4]
    # nothreads: one request at a time keeps the pass-through simple; the
    # agent's buffer is small in these tests. direct_io off: SQLite's WAL
    # index (-shm) is a shared writable mapping, which needs the page cache.
    FUSE(ReadOnlySwitch(backing, flag), mountpoint, foreground=True,
         nothreads=True)
