"""Bodies too large for memory: spooled to local disk as they arrive, and their answers with them.

A body whose in-memory cost (admission.request_cost) is over a share of its worker's memory
budget is written to a file as it arrives, read back through a read-only mmap a slice at a time,
and its answer is written to a second file, sent once complete (its length, its metering header
and its status then describe the whole answer) in chunks. Memory then holds one slice's working
set, whatever the body's size.

No spooled file outlives its request: each is opened already unlinked (O_TMPFILE, or unlinked
the moment it is created where the filesystem lacks it), so the kernel frees its space when the
request closes it, on an answer, an error, a client that hangs up, or a worker that dies.

The page cache counts toward a container's memory limit. It is reclaimable, but a cgroup full
of it is one step from the OOM killer under a burst; so what has been written, and what has been
read, is dropped from it every DROP_BEHIND bytes (posix_fadvise DONTNEED, madvise DONTNEED).

Disk is admitted like memory (DiskBudget): a spooled request reserves its body and as much again
for its answer from the free space of the spool's filesystem (statvfs), less what this worker's
other spooled requests have reserved and not written yet. One that needs more than the whole
filesystem is refused (413, with the space it needs); one that needs more than is free now is
answered 503 with Retry-After.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from typing import Any, Union

from . import formats
from .memory import MEBIBYTE

SPOOL_SHARE = 4  # a body is spooled past a quarter of its worker's budget: four such fit at once
DROP_BEHIND = 8 * MEBIBYTE  # page cache a spooled file may hold before it is dropped
SEND_CHUNK = MEBIBYTE  # the answer is sent from its file this much at a time
DISK_MARGIN_FRACTION = 0.05  # of the spool filesystem, left free for everything else
MAX_DISK_MARGIN = 256 * MEBIBYTE
_PAGE = mmap.PAGESIZE
_FADVISE = getattr(os, "posix_fadvise", None)
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)

Buffer = Union[bytes, bytearray, mmap.mmap]


class DiskTooSmall(Exception):
    """The spool's filesystem could never hold this request (413)."""

    def __init__(self, needed: int, size: int, directory: str) -> None:
        super().__init__(
            f"this request needs about {needed // MEBIBYTE + 1} MB of disk to be answered (its body, spooled, "
            f"and room for its answer), more than the spool filesystem at {directory} holds for requests "
            f"({size // MEBIBYTE} MB): send fewer records per request, or point MODEL_SERVER_SPOOL_DIR at a "
            "larger volume"
        )


class DiskBusy(Exception):
    """Not enough disk free for this request now; it may fit once others are answered (503)."""


class DiskReservation:
    __slots__ = ("bytes", "total")

    def __init__(self, amount: int) -> None:
        self.bytes = amount  # reserved and not written yet
        self.total = amount  # reserved in all, written or not


class DiskBudget:
    """The spool's disk, admitted per request from the filesystem's free space (statvfs).

    Only the worker's event loop calls it. Other workers' spooled requests show in the free
    space as they write; one that loses that race meets ENOSPC while writing and is answered
    503, like one that did not fit at admission.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.outstanding = 0  # reserved by this worker's spooled requests, not yet written

    def usable(self) -> tuple[int, int]:
        """(the most this filesystem could ever hold for requests, what is free for them now)."""
        stats = os.statvfs(self.directory)
        size = stats.f_blocks * stats.f_frsize
        margin = min(MAX_DISK_MARGIN, int(size * DISK_MARGIN_FRACTION))
        free = stats.f_bavail * stats.f_frsize - margin - self.outstanding
        return size - margin, free

    def reserve(self, amount: int) -> DiskReservation:
        """Reserve `amount` bytes; DiskTooSmall if it could never fit, DiskBusy if not now."""
        reservation = DiskReservation(0)
        self.grow(reservation, amount)
        return reservation

    def grow(self, reservation: DiskReservation, amount: int) -> None:
        """Add `amount` to a reservation (a body without Content-Length grows as it arrives)."""
        ever, free = self.usable()
        if reservation.total + amount > ever:
            raise DiskTooSmall(reservation.total + amount, ever, self.directory)
        if amount > free:
            raise DiskBusy()
        self.outstanding += amount
        reservation.bytes += amount
        reservation.total += amount

    def written(self, reservation: DiskReservation, amount: int) -> None:
        """`amount` of the reservation is now on disk, where the free space shows it."""
        amount = min(amount, reservation.bytes)
        reservation.bytes -= amount
        self.outstanding -= amount

    def release(self, reservation: DiskReservation) -> None:
        self.outstanding -= reservation.bytes
        reservation.bytes = 0


class SpoolFile:
    """An unnamed file in the spool directory, written in order and read back or sent."""

    def __init__(self, directory: str, disk: DiskBudget | None = None, reservation: DiskReservation | None = None):
        # TemporaryFile: O_TMPFILE where the filesystem has it, else created and unlinked at once.
        self._file = tempfile.TemporaryFile(dir=directory, buffering=0)
        self.fd = self._file.fileno()
        self.size = 0
        self._disk = disk
        self._reservation = reservation
        self._dropped_to = 0
        self._map: mmap.mmap | None = None

    def write(self, data: Buffer) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
            self.size += written
        if self._disk is not None and self._reservation is not None:
            self._disk.written(self._reservation, len(data))
        if self.size - self._dropped_to >= DROP_BEHIND:
            # Starts writing back what is dirty, and drops what is already written back.
            self._drop_cache(self.size)

    def mapped(self) -> Buffer:
        """The whole file as a read-only buffer (b"" when empty: mmap cannot map nothing)."""
        if self.size == 0:
            return b""
        self._map = mmap.mmap(self.fd, self.size, access=mmap.ACCESS_READ)
        if hasattr(self._map, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
            self._map.madvise(mmap.MADV_SEQUENTIAL)
        self.reading()
        return self._map

    def consumed(self, upto: int) -> None:
        """Everything before `upto` has been read: let it leave memory (mapping and page cache)."""
        upto = min(upto, self.size) // _PAGE * _PAGE
        if upto - self._dropped_to < DROP_BEHIND:
            return
        if self._map is not None and hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_DONTNEED, 0, upto)
        self._drop_cache(upto)

    def reading(self) -> None:
        """Read from the start again (the page cache is dropped behind the reader from now on)."""
        self._dropped_to = 0

    def read_at(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def _drop_cache(self, upto: int) -> None:
        if _FADVISE is not None:
            _FADVISE(self.fd, 0, upto, _DONTNEED)
        self._dropped_to = upto

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view of it is still alive somewhere: the process frees it later
                pass
            self._map = None
        self._file.close()


def make_spool_dir(directory: str) -> str | None:
    """Create the spool directory; None if it can be used, else why not (spooling is then off)."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        return f"cannot write to MODEL_SERVER_SPOOL_DIR={directory}: {error.strerror or error}"
    return None


class SpooledAnswer:
    """An answer in a built-in format, encoded a slice at a time into a spool file
    (formats.assemble's layout, written as it grows)."""

    def __init__(self, kind: str, file: SpoolFile) -> None:
        self.kind = kind
        self.file = file
        self._first = True
        if kind == formats.JSON:
            file.write(b'{"predictions":[')

    def add(self, predictions: Any) -> None:
        part = formats.encode_part(self.kind, predictions)
        if self.kind == formats.JSON and part:
            if not self._first:
                self.file.write(b",")
            self._first = False
        self.file.write(part)

    def finish(self) -> SpoolFile:
        if self.kind == formats.JSON:
            self.file.write(b"]}")
        self.file.reading()
        return self.file
