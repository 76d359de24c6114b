"""Readers for datasets' canonical release files: IDX (MNIST, Fashion-MNIST) and `.amat` (binarized MNIST).

Both return uint8 numpy arrays and raise ValueError naming the file and what is wrong when a file is
truncated or corrupt.

Example:

>>> images = read_idx("mnist/t10k-images-idx3-ubyte.gz")       # (10000, 28, 28) uint8
>>> labels = read_idx("mnist/t10k-labels-idx1-ubyte.gz")       # (10000,) uint8
>>> binary = read_amat("binarized_mnist/binarized_mnist_valid.amat")   # (10000, 28, 28) uint8, 0/1
"""

import gzip
import os
import zlib

import numpy as np

_IDX_UBYTE = 0x08
_AMAT_PIXELS = 28 * 28
_SPACE, _NEWLINE, _RETURN, _TAB, _ZERO, _ONE = (ord(c) for c in " \n\r\t01")


def _read_bytes(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Dataset file not found: {path!r}.")
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path!r} is not a valid gzip file (truncated or corrupt): {err}") from err
    return raw


def read_idx(path):
    """Reads an unsigned-byte IDX file (``*-idx3-ubyte`` images, ``*-idx1-ubyte`` labels), optionally gzipped."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path!r} is too short to be an IDX file ({len(raw)} bytes; truncated?).")
    zero, dtype_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code != _IDX_UBYTE or not 1 <= ndim <= 4:
        raise ValueError(
            f"{path!r} is not an unsigned-byte IDX file: magic number {raw[:4].hex()} "
            f"(expected 0000 08 0N with N in 1..4)."
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"{path!r} is truncated: its header is cut short ({len(raw)} of {header_size} bytes).")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    found = len(raw) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says (corrupt?)"
        raise ValueError(
            f"{path!r} is {problem}: the header gives shape {dims} = {expected} bytes of data, found {found}."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def read_amat(path):
    """Reads a binarized-MNIST ``.amat`` file: one image per line, 784 space-separated 0/1 values."""
    raw = np.frombuffer(_read_bytes(path), dtype=np.uint8)
    is_digit = (raw == _ZERO) | (raw == _ONE)
    is_space = (raw == _SPACE) | (raw == _NEWLINE) | (raw == _RETURN) | (raw == _TAB)
    line_of = np.cumsum(raw == _NEWLINE) - (raw == _NEWLINE)  # 0-based line number of every byte
    bad = np.flatnonzero(~(is_digit | is_space))
    if bad.size:
        raise ValueError(
            f"{path!r} is corrupt: line {line_of[bad[0]] + 1} holds {bytes(raw[bad[0]:bad[0] + 1])!r}; "
            "an .amat image line holds only 0/1 values separated by spaces."
        )
    glued = np.flatnonzero(is_digit[1:] & is_digit[:-1])
    if glued.size:
        raise ValueError(f"{path!r} is corrupt: line {line_of[glued[0]] + 1} has a value that is not 0 or 1.")
    counts = np.bincount(line_of[is_digit], minlength=int(line_of[-1]) + 1 if raw.size else 0)
    wrong = np.flatnonzero((counts != 0) & (counts != _AMAT_PIXELS))
    if wrong.size:
        line = wrong[0]
        hint = " (truncated?)" if line == counts.size - 1 else ""
        raise ValueError(f"{path!r}: line {line + 1} has {counts[line]} values, expected {_AMAT_PIXELS}{hint}.")
    num_images = int(np.count_nonzero(counts))
    if num_images == 0:
        raise ValueError(f"{path!r} holds no images.")
    return (raw[is_digit] - _ZERO).reshape(num_images, 28, 28)
