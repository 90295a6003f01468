"""Covariates: inputs of the decoder (and optionally the encoder), not modelled;
codes free of their effects, decoding and sampling under given values."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skvae import VAEImputer, VAETransformer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def two_batches(n=400, seed=0):
    """Three cell types over six features, batch B shifted by +3 in every
    feature: the batch effect dwarfs nothing, but a code that ignores batch
    must explain it by the decoder's covariate input."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(3, size=n)
    batch = rng.choice(["A", "B"], size=n)
    profiles = np.random.default_rng(42).normal(size=(3, 6)) * 2
    X = profiles[kind] + rng.normal(size=(n, 6)) * 0.5 + 3.0 * (batch == "B")[:, None]
    frame = pd.DataFrame(X, columns=[f"g{j}" for j in range(6)])
    frame["batch"] = pd.Categorical(batch)
    return frame, kind


FRAME, KIND = two_batches()
PARAMS = {"n_components": 2, "hidden_layer_sizes": (32,), "max_iter": 60, "random_state": 0}


@pytest.fixture(scope="module")
def fitted():
    return VAETransformer(**PARAMS, covariates=["batch"]).fit(FRAME)


def test_covariates_are_inputs_not_modelled(fitted):
    assert fitted.column_likelihoods_["batch"]["likelihood"] == "covariate:categorical"
    observation = fitted.module_.observation
    assert observation.covariate_columns == [6] and observation.n_conditions == 2
    # The decoder takes the code and the one-hot batch; the encoder only the
    # six modelled columns (encode_covariates=False).
    assert fitted.module_.decoder[0].in_features == 2 + 2
    assert fitted.module_.encoder[0].in_features == 6
    # score_samples is log p(x | batch): the batch column adds no term, so a
    # row scores the same whatever its batch's frequency.
    rows = FRAME.iloc[:5]
    assert np.isfinite(fitted.score_samples(rows)).all()


def test_codes_do_not_carry_the_batch(fitted):
    """Without the covariate the first code dimension splits the batches; with
    it, a classifier cannot tell the batch from the code much better than
    chance, while the cell types stay apart."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    plain = VAETransformer(**PARAMS).fit(FRAME.drop(columns="batch"))
    batch = FRAME["batch"].to_numpy()

    def accuracy(codes, labels):
        return cross_val_score(LogisticRegression(), codes, labels, cv=3).mean()

    with_covariate = fitted.transform(FRAME)
    assert accuracy(plain.transform(FRAME.drop(columns="batch")), batch) > 0.95
    assert accuracy(with_covariate, batch) < 0.7
    assert accuracy(with_covariate, KIND) > 0.9


def test_counterfactual_decoding_moves_rows_by_the_batch_effect(fitted):
    Z = fitted.transform(FRAME)
    as_a = fitted.inverse_transform(Z, covariates={"batch": "A"})
    as_b = fitted.inverse_transform(Z, covariates={"batch": "B"})
    assert list(as_b.columns) == list(FRAME.columns)
    assert (as_a["batch"] == "A").all() and (as_b["batch"] == "B").all()
    shift = (as_b.iloc[:, :6].to_numpy() - as_a.iloc[:, :6].to_numpy()).mean(axis=0)
    np.testing.assert_allclose(shift, 3.0, atol=0.6)
    # One value per row, as a DataFrame of the covariate columns.
    back = fitted.inverse_transform(Z, covariates=FRAME[["batch"]])
    assert (back["batch"] == FRAME["batch"]).all()


def test_sample_under_given_or_training_covariates(fitted):
    drawn = fitted.sample(2000, random_state=0, covariates={"batch": "B"})
    assert (drawn["batch"] == "B").all()
    real_b = FRAME[FRAME["batch"] == "B"].iloc[:, :6].to_numpy()
    np.testing.assert_allclose(drawn.iloc[:, :6].to_numpy().mean(axis=0),
                               real_b.mean(axis=0), atol=0.5)
    # Without values, batches come at their training frequencies.
    free = fitted.sample(4000, random_state=1)
    share = (free["batch"] == "B").mean()
    assert abs(share - (FRAME["batch"] == "B").mean()) < 0.03
    np.testing.assert_array_equal(fitted.sample(7, random_state=3).to_numpy(),
                                  fitted.sample(7, random_state=3).to_numpy())
    per_row = fitted.sample(3, random_state=0, covariates={"batch": ["A", "B", "A"]})
    assert per_row["batch"].tolist() == ["A", "B", "A"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda v, Z: v.inverse_transform(Z), "give their values with covariates="),
        (lambda v, Z: v.inverse_transform(Z, covariates={"site": 1}),
         r"missing \['batch'\], not covariates \['site'\]"),
        (lambda v, Z: v.inverse_transform(Z, covariates={"batch": ["A", "B"]}),
         "has 2 values for 5 rows"),
        (lambda v, Z: v.inverse_transform(Z, covariates={"batch": "C"}),
         "covariate and has categories not seen in fit"),
        (lambda v, Z: v.sample(2, covariates={"batch": None}), "covariate and has missing"),
    ],
    ids=["none", "wrong name", "wrong length", "unseen", "missing"],
)
def test_bad_covariate_values_are_named(fitted, call, message):
    with pytest.raises(ValueError, match=message):
        call(fitted, np.zeros((5, 2)))


def test_rows_need_known_covariates(fitted):
    missing = FRAME.copy()
    missing.loc[3, "batch"] = None
    with pytest.raises(ValueError, match="'batch' is a covariate and has missing values"):
        fitted.transform(missing)
    with pytest.raises(ValueError, match="'batch' is a covariate and has missing values"):
        VAETransformer(**PARAMS, covariates=["batch"]).fit(missing)
    unseen = FRAME.copy()
    unseen["batch"] = unseen["batch"].cat.add_categories("C")
    unseen.loc[3, "batch"] = "C"
    with pytest.raises(ValueError, match="not seen in fit"):
        fitted.score_samples(unseen)


@pytest.mark.parametrize(
    "covariates, message",
    [(["nope"], "'nope', which is not a column"), (["batch", "batch"], "a column twice"),
     ([f"g{j}" for j in range(6)] + ["batch"], "every column")],
)
def test_bad_covariates_parameter(covariates, message):
    with pytest.raises(ValueError, match=message):
        VAETransformer(**PARAMS, covariates=covariates).fit(FRAME)
    with pytest.raises(ValueError, match="'batch' is a covariate, which has no likelihood"):
        VAETransformer(**PARAMS, covariates=["batch"],
                       likelihood={"batch": "categorical"}).fit(FRAME)


def test_no_covariates_means_no_covariate_values():
    vae = VAETransformer(**{**PARAMS, "max_iter": 2}).fit(FRAME.drop(columns="batch"))
    with pytest.raises(ValueError, match="this model has no covariates"):
        vae.inverse_transform(np.zeros((2, 2)), covariates={"batch": "A"})


def test_numeric_covariates_on_arrays_and_counts():
    rng = np.random.default_rng(0)
    n = 300
    dose = rng.uniform(0, 2, n)  # numeric: many values
    site = rng.integers(0, 3, n)  # whole numbers, 3 values: categorical
    counts = rng.poisson(np.exp(0.5 + 0.8 * dose)[:, None] * np.ones((1, 25)))
    X = np.c_[counts, dose, site]  # floats: "auto" would read them as measurements
    vae = VAETransformer(n_components=2, covariates=[25, 26], likelihood="negbinom",
                         max_iter=20, random_state=0).fit(X)
    kinds = {j: vae.column_likelihoods_[j]["likelihood"] for j in (0, 25, 26)}
    assert kinds == {0: "negbinom", 25: "covariate:numeric", 26: "covariate:categorical"}
    Z = vae.transform(X)
    low = vae.inverse_transform(Z, covariates=[[0.0, 1]])
    high = vae.inverse_transform(Z, covariates=[[2.0, 1]])
    assert low[:, :25].mean() < high[:, :25].mean()
    assert (high[:, 25] == 2.0).all() and (high[:, 26] == 1).all()


def test_encode_covariates_feeds_the_encoder():
    vae = VAETransformer(**{**PARAMS, "max_iter": 3}, covariates=["batch"],
                         encode_covariates=True).fit(FRAME)
    assert vae.module_.encoder[0].in_features == 6 + 2


def test_persistence_clone_and_grid_search(fitted, tmp_path):
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.transform(FRAME), fitted.transform(FRAME))
    pd.testing.assert_frame_equal(loaded.sample(5, random_state=0),
                                  fitted.sample(5, random_state=0))
    assert clone(fitted).covariates == ["batch"]
    search = GridSearchCV(VAETransformer(**{**PARAMS, "max_iter": 3}),
                          {"encode_covariates": [False, True]}, cv=2)
    search.set_params(estimator__covariates=["batch"]).fit(FRAME)
    assert search.best_estimator_.covariates == ["batch"]
    with pytest.raises(ValueError, match="covariates was changed"):
        fitted.set_params(covariates=None, warm_start=True).fit(FRAME)
    fitted.set_params(covariates=["batch"], warm_start=False)


def test_imputer_fills_the_modelled_columns_under_the_covariates():
    frame = FRAME.copy()
    rng = np.random.default_rng(1)
    values = frame.iloc[:, :6].to_numpy().copy()
    values[rng.random(values.shape) < 0.1] = np.nan
    frame.iloc[:, :6] = values
    vae = VAETransformer(**PARAMS, covariates=["batch"])
    filled = VAEImputer(vae, random_state=0).fit_transform(frame)
    assert not filled.iloc[:, :6].isna().any().any()
    assert (filled["batch"] == frame["batch"]).all()
    # The imputations know the batch: batch B's are higher by about its shift.
    holes = np.isnan(values)
    b = (frame["batch"] == "B").to_numpy()[:, None] & holes
    a = (frame["batch"] == "A").to_numpy()[:, None] & holes
    imputed = filled.iloc[:, :6].to_numpy()
    assert imputed[b].mean() - imputed[a].mean() > 2.0


@pytest.mark.parametrize("name", ["mixed_model_before_fitrun", "chunks_model_before_fitrun",
                                  "categorical_model_before_grouping"])
def test_models_saved_before_covariates_load_without_them(name):
    """Files written before covariates existed: no covariates, and sample and
    inverse_transform work as they did."""
    import os

    path = os.path.join(os.path.dirname(__file__), "data", f"{name}.pkl")
    with open(path, "rb") as file:
        vae = pickle.load(file)
    vae = vae["model"] if isinstance(vae, dict) else vae
    assert vae.covariates is None and vae.encode_covariates is False
    assert vae.module_.observation.covariate_columns == []
    drawn = vae.sample(3, random_state=0)
    assert len(drawn) == 3
    assert len(vae.inverse_transform(np.zeros((2, vae.n_components_)))) == 2
    with pytest.raises(ValueError, match="this model has no covariates"):
        vae.sample(2, covariates={"x": 1})


def test_skops_round_trip_trusts_only_the_estimator(fitted):
    sio = pytest.importorskip("skops.io")
    data = sio.dumps(fitted)
    assert sio.get_untrusted_types(data=data) == ["skvae._estimator.VAETransformer"]
    loaded = sio.loads(data, trusted=["skvae._estimator.VAETransformer"])
    np.testing.assert_array_equal(loaded.transform(FRAME), fitted.transform(FRAME))
    pd.testing.assert_frame_equal(loaded.sample(5, random_state=0),
                                  fitted.sample(5, random_state=0))
    types = {type(lik).__name__ for lik in loaded.module_.observation.likelihoods}
    assert "CovariateCategories" in types
