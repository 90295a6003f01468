import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

# The test models are tiny: one thread runs them fastest, and it keeps the suite
# from oversubscribing a machine it shares. (The library itself never does this.)
torch.set_num_threads(1)


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
