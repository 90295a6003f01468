"""The estimator's input validation (skvae._estimator): bad input gets a clear error
naming the problem; the caller's data is untouched."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from skvae import TrainingDivergedError, VAETransformer

X = np.random.RandomState(0).normal(size=(40, 4))


@pytest.fixture(scope="module")
def fitted(make_vae):
    return make_vae(hidden_layer_sizes=(8,), max_iter=3).fit(X)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.where(np.eye(40, 4) == 1, np.inf, X), "infinity"),
        (X[:, 0], "Expected 2D array"),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), "Column 0 holds strings"),
        (sp.csr_matrix(np.where(X > 1, np.nan, X)), "sparse matrix with NaN"),
        (np.empty((0, 4)), "0 sample"),
    ],
    ids=["inf", "1d", "strings", "sparse", "empty"],
)
def test_fit_rejects_bad_input(make_vae, bad, message):
    with pytest.raises(ValueError, match=message):
        make_vae(hidden_layer_sizes=(8,), max_iter=3).fit(bad)


def test_transform_rejects_wrong_number_of_features(fitted):
    with pytest.raises(ValueError, match="X has 3 features, but VAETransformer is expecting 4"):
        fitted.transform(X[:, :3])
    with pytest.raises(ValueError, match="expecting 4"):
        fitted.score_samples(X[:, :3])


def test_inverse_transform_rejects_wrong_number_of_columns(fitted):
    with pytest.raises(ValueError, match="3 columns.*n_components=2"):
        fitted.inverse_transform(np.zeros((5, 3)))


def test_nan_in_inverse_transform_codes_is_rejected(fitted):
    with pytest.raises(ValueError, match="NaN"):
        fitted.inverse_transform(np.array([[0.0, np.nan]]))


def test_bernoulli_rejects_values_outside_unit_interval(make_vae):
    with pytest.raises(ValueError, match=r"likelihood='bernoulli' needs values in \[0, 1\]"):
        make_vae(hidden_layer_sizes=(8,), max_iter=3, likelihood="bernoulli").fit(X)
    vae = make_vae(hidden_layer_sizes=(8,), max_iter=3, likelihood="bernoulli")
    vae.fit(np.abs(X) / np.abs(X).max())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        vae.transform(X)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_components": 0}, "n_components"),
        ({"likelihood": "poison"}, "likelihood"),
        ({"batch_size": -1}, "batch_size"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"activation": "sigmoidal"}, "activation"),
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_invalid_parameters_are_named(make_vae, params, message):
    with pytest.raises(ValueError, match=message):
        make_vae(**{"hidden_layer_sizes": (8,), "max_iter": 3, **params}).fit(X)


def test_cuda_request_without_cuda_is_clear(make_vae):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        make_vae(hidden_layer_sizes=(8,), max_iter=3, device="cuda").fit(X)


@pytest.mark.parametrize(
    "method, args",
    [
        ("transform", (X,)),
        ("inverse_transform", (np.zeros((2, 2)),)),
        ("score_samples", (X,)),
        ("score", (X,)),
        ("sample", (3,)),
    ],
)
def test_unfitted_estimator_raises_not_fitted(method, args):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(VAETransformer(), method)(*args)


def test_sample_rejects_bad_count(fitted):
    with pytest.raises(ValueError, match="n_samples"):
        fitted.sample(0)


def test_input_is_never_modified(make_vae, fitted):
    X32 = X.astype(np.float32)
    before, before32 = X.copy(), X32.copy()
    vae = make_vae(hidden_layer_sizes=(8,), max_iter=3, early_stopping=True).fit(X32)
    vae.transform(X32)
    vae.score_samples(X)
    vae.partial_fit(X32)
    Z = vae.transform(X)
    Z_before = Z.copy()
    vae.inverse_transform(Z)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(X32, before32)
    np.testing.assert_array_equal(Z, Z_before)


def test_divergence_is_reported_and_leaves_a_usable_model(make_vae):
    vae = make_vae(hidden_layer_sizes=(8,), learning_rate_init=1e4, max_iter=50)
    with pytest.raises(TrainingDivergedError, match="NaN or infinite.*learning_rate_init"):
        vae.fit(X * 1e3)
    assert vae.n_iter_ < 50
    assert np.isfinite(vae.transform(X * 1e3)).all()


@pytest.mark.parametrize(
    "random_state, message",
    [("abc", "random_state must be None, an int"), (1.5, "random_state must be None, an int")],
)
def test_sample_names_a_bad_random_state(fitted, random_state, message):
    with pytest.raises(ValueError, match=message):
        fitted.sample(3, random_state=random_state)


def test_sample_takes_a_numpy_generator(fitted):
    a = fitted.sample(3, random_state=np.random.default_rng(0))
    b = fitted.sample(3, random_state=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)


def test_zero_importance_samples_is_an_error_not_the_default(fitted):
    with pytest.raises(ValueError, match="n_importance_samples must be a positive integer"):
        fitted.score_samples(X, n_importance_samples=0)


@pytest.mark.parametrize("device", ["meta", "mps"])
def test_unsupported_torch_devices_are_named(make_vae, device):
    with pytest.raises(ValueError, match=f"device='{device}' is not supported"):
        make_vae(device=device).fit(X)


def test_dataframe_without_columns_is_named(make_vae):
    import pandas as pd

    with pytest.raises(ValueError, match="0 feature"):
        make_vae().fit(pd.DataFrame(index=range(5)))


def test_an_array_for_a_model_fitted_on_categories_is_named(make_vae):
    import pandas as pd

    frame = pd.DataFrame({"x": np.arange(20.0), "kind": ["a", "b"] * 10})
    vae = make_vae(max_iter=2).fit(frame)
    with pytest.raises(ValueError, match="fitted on a DataFrame with categorical columns"):
        vae.transform(frame.to_numpy())


def test_a_failed_refit_leaves_the_fitted_model_as_it_was(make_vae):
    import pandas as pd

    vae = make_vae(max_iter=2).fit(X)
    before = vae.transform(X)
    bad = pd.DataFrame({"t": pd.date_range("2020", periods=5), "x": np.arange(5.0)})
    with pytest.raises(ValueError, match="fits no likelihood"):
        vae.fit(bad)
    with pytest.raises(ValueError, match="negative or fractional"):
        vae.set_params(likelihood="poisson").fit(X)
    vae.set_params(likelihood="auto")
    assert vae.n_features_in_ == 4
    np.testing.assert_array_equal(vae.transform(X), before)
    # ... and training goes on as it would have without the failed calls.
    again = make_vae(max_iter=2).fit(X)
    np.testing.assert_array_equal(vae.set_params(warm_start=True).fit(X).transform(X),
                                  again.set_params(warm_start=True).fit(X).transform(X))
