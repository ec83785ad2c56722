"""Image data sets for the depth experiment, read from local files only (never a download).

* ``digits``: the 1,797 8x8 handwritten digits that ship inside scikit-learn
  (``sklearn.datasets.load_digits``), 64 features, 10 classes.
* ``cifar10``: the official CIFAR-10 python batches a user already has: ``data_batch_1`` ..
  ``data_batch_5`` (train), ``test_batch`` and ``batches.meta``, in the ``cifar-10-batches-py``
  folder itself or in its parent. Each batch is a pickled dict with ``b'data'`` (uint8, one
  row of 3,072 = 3x32x32 values per image) and ``b'labels'``; ``batches.meta`` holds
  ``b'label_names'``.
* ``synthetic``: a seeded Gaussian mixture (10 classes, 32 features) that needs nothing.

Each loader returns a :class:`Dataset` of flattened images; :meth:`Dataset.batch` hands out
standardised float64 rows (per-feature mean and standard deviation of the training split), so
a large uint8 array is converted one batch at a time. A missing or malformed directory raises
:class:`DataError` naming the path and what was expected.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field

import numpy as np

DATASETS = ("digits", "cifar10", "synthetic")

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_META = "batches.meta"
CIFAR_FEATURES = 3 * 32 * 32
CIFAR_CLASSES = 10
_CHUNK = 4096


class DataError(ValueError):
    """A data set cannot be read; the message names the path and what was expected."""


@dataclass
class Dataset:
    name: str
    train_x: np.ndarray  # (N, D), any numeric dtype (uint8 for CIFAR-10)
    train_y: np.ndarray  # (N,) int64 in [0, classes)
    test_x: np.ndarray
    test_y: np.ndarray
    classes: int
    label_names: list = field(default_factory=list)

    def __post_init__(self):
        self.features = int(self.train_x.shape[1])
        # Two-pass mean/variance in row chunks: CIFAR-10's 50000x3072 uint8 training split
        # would need 1.2 GB as one float64 array.
        n = self.train_x.shape[0]
        total = np.zeros(self.features)
        for start in range(0, n, _CHUNK):
            total += self.train_x[start : start + _CHUNK].sum(axis=0, dtype=np.float64)
        mean = total / n
        sq = np.zeros(self.features)
        for start in range(0, n, _CHUNK):
            sq += ((self.train_x[start : start + _CHUNK].astype(np.float64) - mean) ** 2).sum(0)
        std = np.sqrt(sq / n)
        self._mean = mean
        self._std = np.where(std > 0, std, 1.0)  # constant pixels (digits' borders) stay 0

    def batch(self, split: str, index) -> tuple[np.ndarray, np.ndarray]:
        """Standardised float64 features and int64 labels of rows ``index`` of ``split``."""
        x, y = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        rows = (x[index].astype(np.float64) - self._mean) / self._std
        return rows, y[index].astype(np.int64)


def load(name: str, data_dir=None, seed: int = 0) -> Dataset:
    """Loads data set ``name`` (one of ``DATASETS``); ``data_dir`` is for ``cifar10`` only."""
    if name == "digits":
        return load_digits(seed)
    if name == "cifar10":
        if data_dir is None:
            raise DataError("--dataset cifar10 needs --data-dir PATH (the CIFAR-10 python batches)")
        return load_cifar10(data_dir)
    if name == "synthetic":
        return load_synthetic(seed)
    raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")


def load_digits(seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's 8x8 digits, split train/test by a seeded permutation."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataError("--dataset digits needs scikit-learn (pip install scikit-learn)") from exc
    bunch = _sk_load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    return Dataset("digits", x[train], y[train], x[test], y[test], 10, [str(i) for i in range(10)])


def load_synthetic(
    seed: int = 0, classes: int = 10, features: int = 32, n_train: int = 2000, n_test: int = 500
) -> Dataset:
    """A Gaussian mixture: class means ~ N(0, 1), unit-variance noise; seeded."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, features))

    def draw(n):
        y = rng.integers(0, classes, size=n)
        return means[y] + rng.standard_normal((n, features)), y.astype(np.int64)

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    names = [f"class{i}" for i in range(classes)]
    return Dataset("synthetic", train_x, train_y, test_x, test_y, classes, names)


def find_cifar10_dir(data_dir) -> str:
    """The folder holding the batches: ``data_dir`` itself or ``data_dir/cifar-10-batches-py``."""
    path = os.fspath(data_dir)
    if not os.path.isdir(path):
        raise DataError(
            f"CIFAR-10 data directory {path!r} does not exist or is not a directory "
            f"(expected the {CIFAR_FOLDER} folder or its parent)"
        )
    if os.path.isfile(os.path.join(path, CIFAR_META)):
        return path
    inner = os.path.join(path, CIFAR_FOLDER)
    if os.path.isfile(os.path.join(inner, CIFAR_META)):
        return inner
    raise DataError(
        f"no CIFAR-10 python batches in {path!r}: expected {CIFAR_META}, "
        f"{', '.join(CIFAR_TRAIN)} and {CIFAR_TEST} there or in {CIFAR_FOLDER}/ inside it"
    )


def _unpickle(path: str) -> dict:
    if not os.path.isfile(path):
        raise DataError(f"CIFAR-10 file {path!r} is missing (expected a pickled python batch)")
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as exc:  # any unpickling failure is a malformed file
        raise DataError(
            f"CIFAR-10 file {path!r} is not a readable python pickle ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR-10 file {path!r} holds a {type(obj).__name__}, expected a dict")
    return obj


def _read_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    obj = _unpickle(path)
    if b"data" not in obj or b"labels" not in obj:
        raise DataError(f"CIFAR-10 batch {path!r} lacks the b'data' and b'labels' entries")
    data = np.asarray(obj[b"data"])
    labels = np.asarray(obj[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_FEATURES:
        raise DataError(
            f"CIFAR-10 batch {path!r}: b'data' must be a uint8 array of shape "
            f"(n, {CIFAR_FEATURES}), got {data.dtype} of shape {data.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DataError(
            f"CIFAR-10 batch {path!r}: b'labels' must hold {data.shape[0]} labels, "
            f"got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer) or (
        labels.size and (labels.min() < 0 or labels.max() >= CIFAR_CLASSES)
    ):
        raise DataError(
            f"CIFAR-10 batch {path!r}: b'labels' must be integers in [0, {CIFAR_CLASSES})"
        )
    return data, labels.astype(np.int64)


def load_cifar10(data_dir) -> Dataset:
    """Reads the official CIFAR-10 python batches from ``data_dir`` (see the module doc)."""
    root = find_cifar10_dir(data_dir)
    meta = _unpickle(os.path.join(root, CIFAR_META))
    names = meta.get(b"label_names")
    if not isinstance(names, (list, tuple)) or len(names) != CIFAR_CLASSES:
        raise DataError(
            f"CIFAR-10 file {os.path.join(root, CIFAR_META)!r}: expected b'label_names' "
            f"with {CIFAR_CLASSES} names"
        )
    parts = [_read_batch(os.path.join(root, f)) for f in CIFAR_TRAIN]
    test_x, test_y = _read_batch(os.path.join(root, CIFAR_TEST))
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    label_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return Dataset("cifar10", train_x, train_y, test_x, test_y, CIFAR_CLASSES, label_names)
