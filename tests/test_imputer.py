"""VAEImputer (skvae._imputer)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skvae import VAEImputer, VAETransformer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def model(**params):
    return VAETransformer(**{"hidden_layer_sizes": (32,), "n_components": 2, "max_iter": 60,
                             "learning_rate_init": 3e-3, **params})


@pytest.fixture(scope="module")
def correlated(make_incomplete):
    return make_incomplete(400, 0.2)


def test_imputations_beat_the_mean_and_keep_observed_entries(correlated):
    X, X_missing, holes = correlated
    filled = VAEImputer(model(), random_state=0).fit_transform(X_missing)
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~holes], X[~holes])
    vae_error = np.sqrt(np.mean((filled[holes] - X[holes]) ** 2))
    mean = SimpleImputer().fit_transform(X_missing)
    mean_error = np.sqrt(np.mean((mean[holes] - X[holes]) ** 2))
    assert vae_error < 0.5 * mean_error


def test_a_row_is_imputed_the_same_alone_or_among_others(correlated):
    _, X_missing, holes = correlated
    imputer = VAEImputer(model(max_iter=5), random_state=0).fit(X_missing)
    row = np.flatnonzero(holes.any(axis=1))[0]
    together = imputer.transform(X_missing)[row]
    np.testing.assert_allclose(imputer.transform(X_missing[row : row + 1])[0], together,
                               rtol=1e-10)


def test_reproducible_and_posterior_draws_vary(correlated):
    _, X_missing, holes = correlated
    a = VAEImputer(model(max_iter=5), random_state=0).fit(X_missing)
    b = VAEImputer(model(max_iter=5), random_state=0).fit(X_missing)
    np.testing.assert_array_equal(a.transform(X_missing), b.transform(X_missing))
    drawn = clone(a).set_params(sample_posterior=True).fit(X_missing)
    first, second = (drawn.transform(X_missing, random_state=seed) for seed in (1, 2))
    np.testing.assert_array_equal(first, drawn.transform(X_missing, random_state=1))
    assert not np.array_equal(first[holes], second[holes])
    np.testing.assert_array_equal(first[~holes], second[~holes])


def test_mixed_dataframes_come_back_with_their_dtypes():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({
        "x": rng.normal(size=150),
        "n": rng.poisson(3, 150),
        "kind": pd.Categorical(rng.choice(["a", "b", "c"], 150)),
    })
    holes = frame.copy()
    holes["x"] = holes["x"].mask(rng.uniform(size=150) < 0.2)
    holes["n"] = holes["n"].astype("Int64").mask(rng.uniform(size=150) < 0.2)
    holes["kind"] = holes["kind"].mask(rng.uniform(size=150) < 0.2)
    out = VAEImputer(model(max_iter=5), random_state=0).fit_transform(holes)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["x", "n", "kind"]
    assert not out.isna().any().any()
    assert set(out["kind"]) <= {"a", "b", "c"} and out["kind"].dtype == "category"
    assert (out["n"] >= 0).all()


def test_indicator_empty_features_and_names(correlated):
    _, X_missing, holes = correlated
    X = X_missing.copy()
    X[:, 4] = np.nan  # empty in fit
    with pytest.warns(UserWarning, match=r"Skipping features without any observed values: \['x4'\]"):
        imputer = VAEImputer(model(max_iter=3), add_indicator=True, random_state=0).fit(X)
    out = imputer.transform(X)
    n_indicators = imputer.indicator_.features_.size
    assert out.shape == (400, 5 + n_indicators)
    names = imputer.get_feature_names_out()
    assert len(names) == out.shape[1] and "missingindicator_x4" in names and "x4" not in names[:5]
    kept = VAEImputer(model(max_iter=3), keep_empty_features=True, random_state=0).fit(X)
    out = kept.transform(X)
    assert out.shape == (400, 6) and (out[:, 4] == 0).all()


def test_other_missing_value_placeholders(correlated):
    X, X_missing, holes = correlated
    coded = np.where(holes, -999.0, X)
    out = VAEImputer(model(max_iter=3), missing_values=-999.0, random_state=0).fit_transform(coded)
    assert not (out == -999.0).any()
    np.testing.assert_array_equal(out[~holes], X[~holes])
    assert coded[holes][0] == -999.0  # the caller's array is untouched


def test_set_output_pandas(correlated):
    _, X_missing, _ = correlated
    out = VAEImputer(model(max_iter=3), random_state=0).set_output(transform="pandas")
    frame = out.fit_transform(X_missing)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == [f"x{i}" for i in range(6)]


@pytest.mark.slow
def test_in_a_pipeline_and_grid_search(correlated):
    X, X_missing, _ = correlated
    y = (X[:, 0] > np.median(X[:, 0])).astype(int)
    pipe = make_pipeline(VAEImputer(model(max_iter=20), random_state=0), LogisticRegression())
    search = GridSearchCV(pipe, {"vaeimputer__estimator__n_components": [1, 2]}, cv=2)
    search.fit(X_missing, y)
    assert search.best_score_ > 0.8
