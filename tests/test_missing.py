"""Missing values in VAETransformer: training, encoding and scoring incomplete rows."""

import numpy as np
import pandas as pd
import pytest
import torch

from skvae import Likelihood

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def incomplete(make_incomplete):
    return make_incomplete(300, 0.25)


def test_complete_data_take_the_unmasked_path(make_vae, incomplete):
    X, _, _ = incomplete
    vae = make_vae(max_iter=3).fit(X)
    assert not vae.module_.masked
    assert vae.module_.encoder[0].in_features == 6


def test_incomplete_rows_train_encode_and_score(make_vae, incomplete):
    X, X_missing, holes = incomplete
    vae = make_vae(max_iter=40, learning_rate_init=3e-3).fit(X_missing)
    assert vae.module_.masked and vae.module_.encoder[0].in_features == 12
    Z = vae.transform(X_missing)
    assert np.isfinite(Z).all() and Z.shape == (300, 2)
    scores = vae.score_samples(X_missing)
    assert np.isfinite(scores).all()
    # The codes of incomplete rows stay close to those of the complete rows.
    full = vae.transform(X)
    assert np.corrcoef(Z[:, 0], full[:, 0])[0, 1] > 0.8
    assert np.isfinite(vae.score(X_missing))


def test_missing_values_in_dataframes(make_vae):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({
        "x": rng.normal(size=120),
        "n": pd.array(rng.poisson(3, 120), dtype="Int64"),
        "kind": pd.Categorical(rng.choice(["a", "b"], 120)),
        "flag": rng.uniform(size=120) < 0.4,
    })
    frame.loc[::7, "x"] = np.nan
    frame.loc[::5, "n"] = pd.NA
    frame.loc[::6, "kind"] = None
    vae = make_vae(max_iter=5).fit(frame)
    assert vae.module_.masked
    assert np.isfinite(vae.score_samples(frame)).all()
    assert np.isfinite(vae.transform(frame)).all()
    drawn = vae.sample(30, random_state=0)
    assert not drawn.isna().any().any() and (drawn.dtypes == frame.dtypes).all()


def test_nan_in_transform_of_a_model_fitted_on_complete_rows(make_vae, incomplete):
    X, X_missing, _ = incomplete
    vae = make_vae(max_iter=20).fit(X)
    Z = vae.transform(X_missing)
    assert np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[~np.isnan(X_missing).any(axis=1)],
                                  vae.transform(X)[~np.isnan(X_missing).any(axis=1)])
    assert np.isfinite(vae.score_samples(X_missing)).all()


def test_a_column_missing_in_every_row_is_a_clear_error(make_vae, incomplete):
    _, X_missing, _ = incomplete
    X_bad = X_missing.copy()
    X_bad[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"Columns \[2\] have no observed values"):
        make_vae(max_iter=2).fit(X_bad)


def test_almost_all_missing_warns(make_vae):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 5))
    X[rng.uniform(size=X.shape) < 0.97] = np.nan
    X[0] = 1.0  # every column keeps an observed value
    with pytest.warns(UserWarning, match="missing; a model learns little"):
        make_vae(max_iter=2).fit(X)


def test_rows_with_nothing_observed_still_encode(make_vae, incomplete):
    _, X_missing, _ = incomplete
    vae = make_vae(max_iter=3).fit(X_missing)
    blank = np.full((2, 6), np.nan)
    Z = vae.transform(blank)
    assert np.isfinite(Z).all() and np.allclose(Z[0], Z[1])


class SummedOnly(Likelihood):
    def log_prob(self, params, x):
        return -(x - params).square().sum(-1)

    def mean(self, params):
        return params

    def sample(self, params, generator):
        return params


def test_a_likelihood_without_per_column_terms_is_named(make_vae, incomplete):
    X, X_missing, _ = incomplete
    with pytest.raises(ValueError, match="likelihood SummedOnly cannot score rows with missing"):
        make_vae(max_iter=2, likelihood=SummedOnly).fit(X_missing)
    complete = make_vae(max_iter=2, likelihood=SummedOnly).fit(X)
    assert np.isfinite(complete.score_samples(X)).all()  # complete rows need no terms
    with pytest.raises(ValueError, match="likelihood SummedOnly cannot score rows with missing"):
        complete.score_samples(X_missing)


def test_same_seed_same_model_with_missing_values(make_vae, incomplete):
    _, X_missing, _ = incomplete
    a = make_vae(max_iter=3).fit(X_missing)
    b = make_vae(max_iter=3).fit(X_missing)
    np.testing.assert_array_equal(a.transform(X_missing), b.transform(X_missing))
    assert torch.equal(a.module_.encoder[0].weight, b.module_.encoder[0].weight)
