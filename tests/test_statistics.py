"""Column statistics in chunks and threads (skvae._statistics)."""

import numpy as np
import pytest
import torch

import skvae._statistics as statistics
from skvae._likelihoods import Gaussian

# ------------------------------------------------------------ column_moments


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_moments_match_a_float64_two_pass_computation(monkeypatch, dtype):
    monkeypatch.setattr(statistics, "CHUNK_ROWS", 7)  # many uneven chunks
    rng = np.random.RandomState(0)
    X = (rng.normal(size=(50, 5)) * [1, 10, 1e-3, 100, 1] + [0, 1e4, 5, -3, 0]).astype(dtype)
    columns = [0, 1, 3, 4]
    mean, std = statistics.column_moments(X, columns)
    reference = X[:, columns].astype(np.float64)
    # float32 chunks are centred in float32: accurate to float32's precision.
    rtol = 1e-6 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(mean, reference.mean(axis=0), rtol=rtol)
    np.testing.assert_allclose(std, reference.std(axis=0), rtol=rtol)
    mean, std = statistics.column_moments(np.abs(X), None, transform=np.log1p)
    logged = np.log1p(np.abs(X).astype(np.float64))
    np.testing.assert_allclose(mean, logged.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std, logged.std(axis=0), rtol=1e-10)


def test_float32_and_float64_input_give_the_same_scaling(make_vae, correlated32):
    X32 = correlated32
    a = make_vae(max_iter=1, batch_size=10).fit(X32)
    b = make_vae(max_iter=1, batch_size=10).fit(X32.astype(np.float64))
    a, b = a.module_.observation.likelihoods[0], b.module_.observation.likelihoods[0]
    for name in ["loc", "scale", "variance_floor"]:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6)


# --------------------------------------------------- column_groups, in threads


@pytest.mark.parametrize("columns", [None, [0, 2, 3, 5, 6]])
def test_gaussian_statistics_in_parallel_threads_equal_serial(monkeypatch, columns):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 7)).astype(np.float32) * np.arange(1, 8)
    X[:, 2] = 0.0
    X[7, 2] = 0.25  # a rare value the row sample misses
    n = 7 if columns is None else len(columns)
    monkeypatch.setattr(Gaussian, "_GAP_ROWS", 30)
    serial = Gaussian(n).double()
    serial.fit_data(X, columns)
    monkeypatch.setattr(statistics, "PARALLEL_MIN_VALUES", 0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert len(statistics.column_groups(columns, X.shape, 3)) == 3
    parallel = Gaussian(n).double()
    parallel.fit_data(X, columns)
    for name in ["loc", "scale", "variance_floor"]:
        np.testing.assert_array_equal(getattr(serial, name), getattr(parallel, name))
    assert (serial.variance_floor > Gaussian.DISCRETE_FLOOR).any()  # the rare column's gap


def test_moments_and_gaps_skip_missing_entries(monkeypatch):
    monkeypatch.setattr(statistics, "CHUNK_ROWS", 7)  # chunks with and without NaN
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3)) * [1, 5, 0.1]
    X[rng.uniform(size=X.shape) < 0.3] = np.nan
    X[:7, 1] = np.nan  # a chunk where one column is all missing
    n, mean, m2 = statistics.column_moment_sums(X)
    np.testing.assert_array_equal(n, (~np.isnan(X)).sum(axis=0))
    np.testing.assert_allclose(mean, np.nanmean(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(m2 / n), np.nanstd(X, axis=0), rtol=1e-12)
    grid = np.array([[0.0], [np.nan], [0.5], [2.0], [np.nan]])
    assert statistics.smallest_gaps(grid).tolist() == [0.5]
