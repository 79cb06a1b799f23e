"""Clearing the "open for write" flags a dead writer left in an HDF5 file (what ``h5clear -s`` does).

An HDF5 file in the 1.10 format records in its superblock that a process has it open for
writing (and for SWMR writing); a clean close clears the flags. A writer killed while it held
the file leaves them set, and from then on every open fails ("file is already open for write
… may use <h5clear file> to clear file consistency flags"), although the data is intact. HDF5
has no call that clears them (only its ``h5clear`` tool, which is not always installed), so this
module rewrites the flags byte and the superblock's checksum (Jenkins' lookup3, as HDF5
computes it).

Only the store's lock holder calls this: a file whose flags are set while its writer lock is
free was left by a dead writer, never by a live one (see :mod:`embedpipe.store.lock`).

Examples
--------
>>> import h5py
>>> with h5py.File("f.h5", "w", libver=("v110", "latest")) as f:
...     _ = f.create_dataset("x", data=[1.0, 2.0])
>>> write_flags("f.h5")
0
>>> set_write_flags("f.h5", 1)       # what a writer killed in mid-write leaves behind
>>> clear_write_flags("f.h5")
True
>>> h5py.File("f.h5", "r")["x"][:].tolist()
[1.0, 2.0]
"""

from __future__ import annotations

import os
from pathlib import Path

SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Where HDF5 looks for the superblock: 0, then 512 and every doubling (after a user block).
_SEARCH = (0, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
_MASK = 0xFFFFFFFF
#: The superblock's flag bits: open for write, open for SWMR write.
WRITE_ACCESS = 0x01
SWMR_WRITE_ACCESS = 0x04


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' ``hashlittle`` (lookup3.c), the checksum of HDF5's metadata blocks.

    Examples
    --------
    >>> hex(lookup3(b"Four score and seven years ago"))   # lookup3.c's own test vector
    '0x17770551'
    """
    n = len(data)
    s = [(0xDEADBEEF + n + initval) & _MASK] * 3  # a, b, c
    i = 0
    while n > 12:
        _add_words(s, data[i : i + 12])
        for k, (x, y, z) in zip((4, 6, 8, 16, 19, 4), _ROLES * 2, strict=True):  # mix()
            s[x] = ((s[x] - s[z]) & _MASK) ^ _rot(s[z], k)
            s[z] = (s[z] + s[y]) & _MASK
        n -= 12
        i += 12
    if n == 0:
        return s[2]
    _add_words(s, data[i:] + bytes(12 - n))
    for k, (x, _, z) in zip((14, 11, 25, 16, 4, 14, 24), _FINAL_ROLES, strict=True):  # final()
        s[x] ^= s[z]
        s[x] = (s[x] - _rot(s[z], k)) & _MASK
    return s[2]


#: Which of (a, b, c) each step of lookup3's mix() changes, adds and reads: (x, y, z) means
#: ``x -= z; x ^= rot(z, k); z += y`` (and, in final(), ``x ^= z; x -= rot(z, k)``).
_ROLES = ((0, 1, 2), (1, 2, 0), (2, 0, 1))
_FINAL_ROLES = ((2, 0, 1), (0, 1, 2), (1, 2, 0)) * 2 + ((2, 0, 1),)


def _add_words(s: list[int], block: bytes) -> None:
    for j in range(3):
        s[j] = (s[j] + int.from_bytes(block[4 * j : 4 * j + 4], "little")) & _MASK


def _superblock(fh: os.PathLike[str] | str) -> tuple[int, int] | None:
    """(offset, length without checksum) of a version 2/3 superblock, or None for another file."""
    with open(fh, "rb") as f:
        for at in _SEARCH:
            f.seek(at)
            head = f.read(11)
            if len(head) < 11:
                return None
            if head[:8] != SIGNATURE:
                continue
            if head[8] not in (2, 3):  # versions 0/1 (the pre-1.8 format) have no such flags
                return None
            size_of_offsets = head[9]
            return at, 12 + 4 * size_of_offsets
    return None


def write_flags(path: str | Path) -> int:
    """The superblock's file-consistency flags (0 when closed cleanly; -1 for another format)."""
    sb = _superblock(path)
    if sb is None:
        return -1
    with open(path, "rb") as f:
        f.seek(sb[0] + 11)
        return f.read(1)[0]


def set_write_flags(path: str | Path, flags: int) -> None:
    """Write ``flags`` into the superblock with a valid checksum (tests and fault drills)."""
    sb = _superblock(path)
    if sb is None:
        raise ValueError(f"{str(path)!r} has no HDF5 1.10-format superblock")
    at, size = sb
    with open(path, "r+b") as f:
        f.seek(at)
        block = bytearray(f.read(size))
        block[11] = flags
        f.seek(at)
        f.write(bytes(block) + lookup3(bytes(block)).to_bytes(4, "little"))
        f.flush()
        os.fsync(f.fileno())


def left_outside_swmr(path: str | Path) -> bool:
    """True for a file flagged as open for write but not in SWMR mode: no reader opens it
    (a file a dead SWMR writer left still opens for SWMR reading)."""
    flags = write_flags(path)
    return flags > 0 and bool(flags & WRITE_ACCESS) and not flags & SWMR_WRITE_ACCESS


def clear_write_flags(path: str | Path) -> bool:
    """Clear the flags a dead writer left; True when there were any (call with the lock held)."""
    if write_flags(path) <= 0:
        return False
    set_write_flags(path, 0)
    return True
