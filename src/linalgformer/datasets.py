"""Real data for the spectral experiments: scikit-learn's digits and MNIST-style IDX files.

As the authors did with MNIST (He et al.), images are flattened, projected on the top ``dim``
principal components of the training images, and each component is standardised (training mean 0,
variance 1). An experiment then cuts the projected images into blocks of n samples.

* :func:`load_digits_projected`: ``sklearn.datasets.load_digits`` (1,797 8x8 images, bundled with
  scikit-learn: nothing is downloaded).
* :func:`load_idx_projected`: MNIST / Fashion-MNIST from local IDX files (optionally gzipped),
  read by :func:`read_idx`, which checks the header against the file before allocating anything.

The split is a seeded shuffle: the last ``test_fraction`` of the shuffled images are the test pool.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from sklearn.datasets import load_digits

from linalgformer.errors import UserError
from linalgformer.files import open_regular

IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_MAX_BYTES = 1 << 31  # 2 GiB: far above MNIST's 47 MB, far below an absurd header
IDX_MAX_DIMS = 4


@dataclass
class ProjectedData:
    """Projected, standardised images (N, dim) and their integer labels (N,), split in two pools."""

    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray

    def pool(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        return (self.train, self.train_labels) if split == "train" else (self.test, self.test_labels)


def project_standardise(images: np.ndarray, labels: np.ndarray, dim: int, test_fraction: float,
                        seed: int = 0) -> ProjectedData:
    """Split, fit PCA and standardisation on the training images only, and apply them to both."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    if not 0 < dim <= flat.shape[1]:
        raise UserError(f"cannot project {flat.shape[1]}-pixel images on {dim} components.")
    order = np.random.default_rng(seed).permutation(len(flat))
    cut = len(flat) - int(round(test_fraction * len(flat)))
    train, test = flat[order[:cut]], flat[order[cut:]]
    mean = train.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(train - mean, rowvar=False))
    basis = vectors[:, ::-1][:, :dim]  # (pixels, dim): top principal directions
    train_p, test_p = (train - mean) @ basis, (test - mean) @ basis
    centre, spread = train_p.mean(axis=0), train_p.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    return ProjectedData((train_p - centre) / spread, labels[order[:cut]].astype(np.int64),
                         (test_p - centre) / spread, labels[order[cut:]].astype(np.int64))


def load_digits_projected(dim: int, test_fraction: float = 0.2, seed: int = 0) -> ProjectedData:
    """scikit-learn's bundled 8x8 digits, projected on ``dim`` components and standardised."""
    digits = load_digits()
    return project_standardise(digits.data, digits.target, dim, test_fraction, seed)


def load_idx_projected(images_path: str | Path, labels_path: str | Path | None, dim: int,
                       test_fraction: float = 0.2, seed: int = 0) -> ProjectedData:
    """MNIST-style IDX images (N, rows, cols) and optional labels (N,), projected and standardised."""
    images = read_idx(images_path)
    if images.ndim < 2:
        raise UserError(f"{images_path} holds a 1-dimensional array, not images.")
    labels = read_idx(labels_path) if labels_path else np.zeros(len(images), dtype=np.int64)
    if labels.shape != (len(images),):
        raise UserError(f"{labels_path} holds {labels.shape} labels for {len(images)} images.")
    return project_standardise(images, labels, dim, test_fraction, seed)


def read_idx(path: str | Path, max_bytes: int = IDX_MAX_BYTES) -> np.ndarray:
    """Read an IDX file (``.gz`` too). The header is validated before the data are allocated."""
    path = Path(path)
    try:
        with _open_idx(path) as handle:
            dtype, shape = _idx_header(handle, path, max_bytes)
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            _check_plain_size(path, size, 4 + 4 * len(shape))
            data = handle.read(size)
            if len(data) != size or handle.read(1):
                raise UserError(f"{path} does not hold the {size} data bytes its header announces.")
    except OSError as err:
        raise UserError(f"cannot read IDX file {path}: {err.strerror or err}.") from None
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _open_idx(path: Path) -> BinaryIO:
    """The IDX file, opened once it is known to be a regular file (a FIFO or device never is)."""
    handle = open_regular(path, "IDX file", IDX_MAX_BYTES)
    compressed = handle.read(2) == b"\x1f\x8b"
    handle.seek(0)
    return gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle


def _idx_header(handle: BinaryIO, path: Path, max_bytes: int) -> tuple[np.dtype, tuple[int, ...]]:
    magic = handle.read(4)
    if len(magic) != 4 or magic[:2] != b"\x00\x00" or magic[2] not in IDX_TYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number).")
    ndim = magic[3]
    if not 1 <= ndim <= IDX_MAX_DIMS:
        raise UserError(f"{path}: an IDX header with {ndim} dimensions is not supported (1 to {IDX_MAX_DIMS}).")
    raw = handle.read(4 * ndim)
    if len(raw) != 4 * ndim:
        raise UserError(f"{path}: the IDX header is truncated.")
    shape = struct.unpack(f">{ndim}I", raw)
    dtype = IDX_TYPES[magic[2]]
    total = dtype.itemsize
    for n in shape:
        total *= n
        if n == 0 or total > max_bytes:
            raise UserError(f"{path}: the IDX header announces an array of shape {shape}, "
                            f"which is empty or larger than {max_bytes} bytes; refusing it.")
    return dtype, shape


def _check_plain_size(path: Path, size: int, header: int) -> None:
    """For an uncompressed file the size is known up front: compare before reading."""
    with open(path, "rb") as probe:
        if probe.read(2) == b"\x1f\x8b":
            return
    actual = path.stat().st_size
    if actual != header + size:
        raise UserError(f"{path} has {actual} bytes but its IDX header announces {header + size}.")


def distinct_blocks(rng: np.random.Generator, population: int, count: int, size: int) -> np.ndarray:
    """``count`` rows of ``size`` distinct indices into ``range(population)`` (count, size)."""
    if size > population:
        raise UserError(f"cannot draw blocks of {size} distinct samples from {population}.")
    if size * size > 4 * population:  # duplicates would be common: shuffle instead of rejecting
        return rng.random((count, population)).argsort(axis=1)[:, :size]
    idx = rng.integers(0, population, size=(count, size))
    while True:
        ordered = np.sort(idx, axis=1)
        bad = (np.diff(ordered, axis=1) == 0).any(axis=1)
        if not bad.any():
            return idx
        idx[bad] = rng.integers(0, population, size=(int(bad.sum()), size))
