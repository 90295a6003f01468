"""Data handling (skvae._data): seeds and generators, the validation split, where
the training rows are placed."""

import numpy as np
import torch

import skvae._data as data

# ------------------------------------------------------------ seeds, generators


def test_same_seed_is_bit_identical_and_other_seed_differs(make_vae, correlated):
    X = correlated
    a, b = make_vae(random_state=3).fit(X), make_vae(random_state=3).fit(X)
    c = make_vae(random_state=4).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    np.testing.assert_array_equal(a.sample(5, random_state=0), b.sample(5, random_state=0))
    assert a.loss_curve_ == b.loss_curve_
    assert not np.allclose(a.transform(X), c.transform(X))


def test_global_random_states_are_untouched(make_vae, correlated):
    X = correlated
    np.random.seed(123)
    torch.manual_seed(123)
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    vae = make_vae(random_state=None, early_stopping=True).fit(X)
    vae.sample(3)
    vae.score_samples(X)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_random_state_none_gives_different_models(make_vae, correlated):
    X = correlated
    a, b = make_vae(random_state=None).fit(X), make_vae(random_state=None).fit(X)
    assert not np.allclose(a.transform(X), b.transform(X))


# ---------------------------------------------------------- validation split


def test_validation_split_is_a_partition_of_row_indices():
    generator = torch.Generator().manual_seed(0)
    train, valid = data.split_validation(101, 0.2, generator)
    assert len(valid) == 20 and len(train) == 81
    assert sorted(torch.cat([train, valid]).tolist()) == list(range(101))


# --------------------------------------------------- data too large for a device


def test_place_rows_keeps_data_resident_when_it_fits(monkeypatch):
    x = torch.zeros(1000, 10)
    assert data.place_rows(x, torch.device("cpu"), 32)[1] is None
    monkeypatch.setattr(data, "free_device_bytes", lambda device: 10**9)
    assert data.place_rows(x, torch.device("cpu"), 32)[1] is None
    monkeypatch.setattr(data, "free_device_bytes", lambda device: 40_000)
    placed, chunk_rows = data.place_rows(x, torch.device("cpu"), 32)
    assert placed is x
    # Half of 40 kB at 40 bytes a row is 500 rows: 15 whole batches of 32.
    assert chunk_rows == 15 * 32


def test_scoring_batches_shrink_for_wide_rows():
    """K importance samples of 20,000-column rows: a few rows per batch, so
    that a (K, rows, columns) float64 tensor stays within its budget; narrow
    rows keep EVAL_BATCH_SIZE // K."""
    from skvae._data import EVAL_BATCH_SIZE, EVAL_SAMPLE_BYTES, eval_rows

    assert eval_rows(32, 64) == EVAL_BATCH_SIZE // 32
    wide = eval_rows(32, 20_000)
    assert 1 <= wide < 100 and 8 * 32 * 20_000 * wide <= EVAL_SAMPLE_BYTES
    assert eval_rows(10**6, 10**6) == 1
