"""Thread safety: fits and inference from many threads give the results of
serial calls, and torch's process-wide random state is neither used nor changed."""

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch

from skvae import VAETransformer

N_THREADS = 8


def counts_table():
    rng = np.random.RandomState(0)
    rate = np.exp(rng.normal(size=(120, 1)) @ rng.normal(size=(1, 4)) * 0.5 + 1)
    return pd.DataFrame(rng.poisson(rate), columns=list("abcd"))


def fit(seed, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=seed,
                              likelihood="negbinom").fit(X)


def test_threaded_fits_equal_serial_fits():
    X = counts_table()
    serial = [fit(seed % 4, X).transform(X) for seed in range(N_THREADS)]
    state = torch.get_rng_state()
    stop = threading.Event()

    def busy():  # someone else using torch's global generator meanwhile
        while not stop.is_set():
            torch.rand(10)

    other = threading.Thread(target=busy)
    other.start()
    try:
        with ThreadPoolExecutor(N_THREADS) as pool:
            threaded = list(pool.map(lambda seed: fit(seed % 4, X).transform(X),
                                     range(N_THREADS)))
    finally:
        stop.set()
        other.join(timeout=30)
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)
    # Nothing here drew from the global state (the busy thread moved it, so
    # compare by running the fits alone).
    torch.set_rng_state(state)
    fit(0, X)
    assert torch.equal(torch.get_rng_state(), state)


def test_threaded_inference_equals_serial():
    X = counts_table()
    model = fit(0, X)

    def calls(k):
        return (model.transform(X), model.score_samples(X),
                model.sample(50, random_state=k), model.inverse_transform(model.transform(X)))

    serial = [calls(k) for k in range(N_THREADS)]
    with ThreadPoolExecutor(N_THREADS) as pool:
        threaded = list(pool.map(calls, range(N_THREADS)))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        pd.testing.assert_frame_equal(a[2], b[2])
        pd.testing.assert_frame_equal(a[3], b[3])


def test_user_network_built_under_the_lock_gives_serial_weights():
    """A user's network initialises itself from torch's global state: it is
    seeded from random_state, so threaded fits still match serial ones."""
    from torch import nn

    X = np.random.RandomState(0).normal(size=(60, 5))

    def build(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return VAETransformer(encoder=nn.Linear, max_iter=2,
                                  random_state=seed).fit(X).transform(X)

    serial = [build(seed) for seed in range(4)]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(build, range(4)))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)
