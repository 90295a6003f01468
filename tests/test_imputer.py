"""VAEImputer (skvae._imputer)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

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


def test_indicator_names_non_string_columns_for_downstream_steps():
    X = np.random.RandomState(0).normal(size=(20, 3))
    X[X > 1] = np.nan
    frame = pd.DataFrame(X)  # integer column labels
    imputer = VAEImputer(model(max_iter=3), add_indicator=True, random_state=0)
    out = imputer.fit_transform(frame)
    assert list(out.columns) == list(imputer.get_feature_names_out())
    assert list(out.columns[:3]) == ["x0", "x1", "x2"]
    # A scikit-learn step after it accepts the column names.
    pipe = make_pipeline(
        VAEImputer(model(max_iter=3), add_indicator=True, random_state=0),
        model(max_iter=3),
    )
    assert pipe.fit_transform(frame).shape == (20, 2)
    # Without indicator columns, the original labels stay.
    plain = VAEImputer(model(max_iter=3), random_state=0).fit_transform(frame)
    assert list(plain.columns) == [0, 1, 2]


def test_kept_empty_columns_keep_their_dtypes():
    n = 20
    frame = pd.DataFrame({
        "a": np.random.RandomState(0).normal(size=n),
        "f": np.nan,
        "i": pd.Series([pd.NA] * n, dtype="Int64"),
        "b": pd.Series([pd.NA] * n, dtype="boolean"),
        "s": pd.Series([None] * n, dtype="string"),
        "o": pd.Series([None] * n, dtype=object),
        "k": pd.Categorical([None] * n, categories=["p", "q"]),
    })
    imputer = VAEImputer(model(max_iter=3), keep_empty_features=True, random_state=0)
    out = imputer.fit_transform(frame)
    assert list(out.columns) == list(frame.columns)
    pd.testing.assert_series_equal(out.dtypes, frame.dtypes)
    assert (out["f"] == 0).all() and (out["i"] == 0).all() and (~out["b"]).all()
    assert (out["s"] == "").all() and (out["o"] == "").all() and (out["k"] == "p").all()
    assert not out.isna().any().any()
    # Non-string column labels: the empty columns are put back under their
    # labels; a categorical column without categories gets the category "".
    labelled = pd.DataFrame(
        {0: frame["a"], 1: frame["i"], 2: pd.Categorical([None] * n)})
    out = VAEImputer(model(max_iter=3), keep_empty_features=True,
                     random_state=0).fit_transform(labelled)
    assert list(out.columns) == [0, 1, 2]
    assert out[1].dtype == "Int64" and (out[1] == 0).all()
    assert list(out[2].cat.categories) == [""] and (out[2] == "").all()


def test_an_empty_column_without_a_fill_value_is_refused_when_kept():
    frame = pd.DataFrame({"a": np.random.RandomState(0).normal(size=20),
                          "when": pd.Series([pd.NaT] * 20, dtype="datetime64[ns]")})
    imputer = VAEImputer(model(max_iter=3), keep_empty_features=True, random_state=0)
    with pytest.raises(ValueError, match=r"Column 'when' has no observed values"):
        imputer.fit(frame)


def test_integer_column_with_a_numeric_placeholder_stays_integer():
    rng = np.random.RandomState(0)
    coded = pd.DataFrame({"a": rng.normal(size=20),
                          "n": np.random.RandomState(1).poisson(3, 20),
                          "s": pd.array(rng.choice(["u", "v"], 20), dtype="string")})
    coded.loc[:3, "n"] = -1
    original = coded.copy()
    imputer = VAEImputer(model(max_iter=3), missing_values=-1, random_state=0)
    out = imputer.fit_transform(coded)
    pd.testing.assert_series_equal(out.dtypes, coded.dtypes)
    assert (out["n"] >= 0).all()
    np.testing.assert_array_equal(out["n"][4:], coded["n"][4:])
    pd.testing.assert_frame_equal(coded, original)  # the caller's frame is untouched
    # Modelled as the same column with pd.NA is.
    nullable = coded.astype({"n": "Int64"})
    nullable.loc[:3, "n"] = pd.NA
    expected = VAEImputer(model(max_iter=3), random_state=0).fit_transform(nullable)
    np.testing.assert_array_equal(out["n"], expected["n"].astype(np.int64))
    np.testing.assert_array_equal(out["a"], expected["a"])
    np.testing.assert_array_equal(out["s"], expected["s"])


def test_float32_arrays_stay_float32():
    X = np.random.RandomState(0).normal(size=(20, 3)).astype(np.float32)
    holes = X.copy()
    holes[0, 0] = np.nan
    imputer = VAEImputer(model(max_iter=3), random_state=0).fit(holes)
    assert imputer.transform(holes).dtype == np.float32
    assert imputer.transform(X).dtype == np.float32
    with_indicator = VAEImputer(model(max_iter=3), add_indicator=True, random_state=0)
    assert with_indicator.fit_transform(holes).dtype == np.float32


def test_transform_keeps_row_labels_and_observed_values_of_kept_empty_columns():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30),
                          "e": np.nan}, index=np.arange(100, 130))
    frame.loc[frame.index[:5], "a"] = np.nan
    imputer = VAEImputer(VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0),
                         keep_empty_features=True, random_state=0)
    with pytest.warns(ConvergenceWarning):  # two epochs
        imputer.fit(frame)
    later = frame.copy()
    later.loc[later.index[:3], "e"] = [1.5, -2.0, 4.0]  # observed in transform
    out = imputer.transform(later)
    assert out.index.equals(later.index)
    assert out["e"].tolist() == [1.5, -2.0, 4.0] + [0.0] * 27
    on_arrays = clone(imputer)
    with pytest.warns(ConvergenceWarning):
        on_arrays.fit(frame.to_numpy())
    array_out = on_arrays.transform(later.to_numpy())
    np.testing.assert_array_equal(array_out[:, 2], out["e"].to_numpy())


def test_feature_names_out_checks_the_input_names(correlated):
    _, X_missing, _ = correlated
    imputer = VAEImputer(model(max_iter=2), add_indicator=True, random_state=0)
    imputer.fit(X_missing)
    names = [f"f{i}" for i in range(6)]
    assert list(imputer.get_feature_names_out(names)[:6]) == names
    with pytest.raises(ValueError, match="input_features should have length equal"):
        imputer.get_feature_names_out(names[:5])
    frame = pd.DataFrame(X_missing, columns=names)
    fitted = VAEImputer(model(max_iter=2), random_state=0).fit(frame)
    with pytest.raises(ValueError, match="not equal to feature_names_in_"):
        fitted.get_feature_names_out([f"g{i}" for i in range(6)])


@pytest.mark.parametrize("estimator", [PCA(), make_pipeline(StandardScaler(), model()),
                                       VAETransformer])
def test_estimator_must_be_a_vae_instance(correlated, estimator):
    """Another transformer was fitted in full, then failed on a missing attribute
    (or on the NaN it cannot take)."""
    _, X_missing, _ = correlated
    with pytest.raises(InvalidParameterError, match="must be an instance of"):
        VAEImputer(estimator).fit(X_missing)
