"""Data and factories shared by the test modules."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits

from skvae import VAETransformer

# The test models are tiny: one thread runs them fastest, and it keeps the suite
# from oversubscribing a machine it shares. (The library itself never does this.)
torch.set_num_threads(1)


# ---------------------------------------------------------------- estimators


@pytest.fixture(scope="session")
def make_vae():
    """A factory for the small, seeded estimators the tests train.

    ``make_vae(**params)`` is a ``VAETransformer`` with ``hidden_layer_sizes=(16,)``,
    ``max_iter=5`` and ``random_state=0`` unless ``params`` say otherwise. Tests
    that need other sizes pass them explicitly.
    """

    def make(**params):
        defaults = {"hidden_layer_sizes": (16,), "max_iter": 5, "random_state": 0}
        return VAETransformer(**{**defaults, **params})

    return make


# ---------------------------------------------------------------------- data


@pytest.fixture(scope="session")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="session")
def low_rank():
    """300 rows in 8-D lying near a 2-D plane, plus small noise."""
    rng = np.random.RandomState(0)
    Z = rng.normal(size=(300, 2))
    W = rng.normal(size=(2, 8))
    return Z @ W + 0.1 * rng.normal(size=(300, 8)) + 3.0


@pytest.fixture(scope="session")
def make_incomplete():
    """A factory: ``make_incomplete(n_rows, missing_rate)`` gives ``(X, X with
    holes, holes)``: rows near a plane in 6-D (plus 0.1 noise), and entries
    removed completely at random."""

    def make(n_rows, missing_rate):
        rng = np.random.RandomState(0)
        X = rng.normal(size=(n_rows, 2)) @ rng.normal(size=(2, 6))
        X = X + 0.1 * rng.normal(size=(n_rows, 6))
        holes = rng.uniform(size=X.shape) < missing_rate
        return X, np.where(holes, np.nan, X), holes

    return make


@pytest.fixture(scope="session")
def correlated():
    """200 rows of 6 correlated Gaussian columns, float64."""
    return (
        np.random.RandomState(0).normal(size=(200, 6))
        @ np.random.RandomState(1).normal(size=(6, 6))
    )


@pytest.fixture(scope="session")
def correlated32():
    """300 rows of 4 correlated Gaussian columns, float32 (the training dtype)."""
    return (
        np.random.RandomState(0).normal(size=(300, 4))
        @ np.random.RandomState(1).normal(size=(4, 4))
    ).astype(np.float32)


@pytest.fixture(scope="session")
def table():
    """400 rows of a mixed table: a float, two categoricals, counts, booleans."""
    rng = np.random.RandomState(0)
    n = 400
    group = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1])
    shift = pd.Series(group).map({"a": 0.0, "b": 2.0, "c": -2.0}).to_numpy()
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, size=n) + 5 * shift,
            "group": pd.Categorical(group, categories=["a", "b", "c", "never"]),
            "city": rng.choice(["x", "y"], size=n).astype(object),
            "visits": rng.poisson(np.exp(1 + 0.3 * shift)).astype(np.int64),
            "member": rng.uniform(size=n) < 0.3,
        }
    )
