"""The estimator's API: transform, inverse_transform, sample, score, sklearn glue."""

import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer


def test_transform_is_deterministic_posterior_mean(make_vae, low_rank):
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=30).fit(low_rank)
    Z = vae.transform(low_rank)
    assert Z.shape == (300, 2) and Z.dtype == np.float64
    np.testing.assert_array_equal(Z, vae.transform(low_rank))
    np.testing.assert_array_equal(vae.fit_transform(low_rank), Z)


def test_float32_input_gives_float32_output(make_vae, low_rank):
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=30).fit(low_rank)
    X32 = low_rank.astype(np.float32)
    assert vae.transform(X32).dtype == np.float32
    assert vae.inverse_transform(vae.transform(X32)).dtype == np.float32
    np.testing.assert_allclose(vae.transform(X32), vae.transform(low_rank), atol=1e-4)


def test_reconstruction_beats_the_mean(make_vae, low_rank):
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=150, learning_rate_init=3e-3).fit(low_rank)
    X_hat = vae.inverse_transform(vae.transform(low_rank))
    assert X_hat.shape == low_rank.shape
    vae_error = np.mean((X_hat - low_rank) ** 2)
    mean_error = np.mean((low_rank - low_rank.mean(0)) ** 2)
    assert vae_error < 0.02 * mean_error


def test_sample_is_reproducible_and_follows_the_data(make_vae, low_rank):
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=150).fit(low_rank)
    a = vae.sample(2000, random_state=1)
    assert a.shape == (2000, 8) and a.dtype == np.float64
    np.testing.assert_array_equal(a, vae.sample(2000, random_state=1))
    assert not np.array_equal(a, vae.sample(2000, random_state=2))
    np.testing.assert_allclose(a.mean(0), low_rank.mean(0), atol=0.4)
    np.testing.assert_allclose(a.std(0), low_rank.std(0), rtol=0.3)


def test_score_prefers_data_like_the_training_data(make_vae, low_rank):
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=100).fit(low_rank)
    shifted = low_rank + 2 * low_rank.std(0)
    assert vae.score(low_rank) > vae.score(shifted) + 1
    samples = vae.score_samples(low_rank)
    assert samples.shape == (300,) and np.isfinite(samples).all()
    assert vae.score(low_rank) == pytest.approx(samples.mean())


def test_importance_samples_tighten_the_bound(make_vae, low_rank):
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=50).fit(low_rank)
    few = vae.score_samples(low_rank, n_importance_samples=4).mean()
    many = vae.score_samples(low_rank, n_importance_samples=256).mean()
    assert vae.score(low_rank) == pytest.approx(
        vae.score_samples(low_rank, n_importance_samples=vae.n_score_samples).mean()
    )
    assert many > few
    np.testing.assert_allclose(
        vae.score_samples(low_rank[:5], n_importance_samples=100),
        vae.score_samples(low_rank, n_importance_samples=100)[:5],
        rtol=1e-12,
    )


def test_score_is_a_density_in_original_units(make_vae, low_rank):
    """Scaling the data by c shifts log p(x) by -n_features * log(c)."""
    a = make_vae(hidden_layer_sizes=(32,), max_iter=50).fit(low_rank)
    b = make_vae(hidden_layer_sizes=(32,), max_iter=50).fit(low_rank * 10.0)
    assert b.score(low_rank * 10.0) == pytest.approx(a.score(low_rank) - 8 * np.log(10.0), abs=0.05)


def test_bernoulli_likelihood_on_binary_pixels(make_vae, digits):
    X = (digits[0] > 0.5).astype(float)
    vae = make_vae(hidden_layer_sizes=(32,), likelihood="bernoulli", n_components=5, max_iter=20)
    vae.fit(X)
    X_hat = vae.inverse_transform(vae.transform(X))
    assert X_hat.min() >= 0 and X_hat.max() <= 1
    assert np.mean((X_hat > 0.5) == X) > 0.85
    drawn = vae.sample(10, random_state=0)
    assert set(np.unique(drawn)) <= {0.0, 1.0}
    assert vae.score(X) > vae.score(1 - X)


def test_feature_names_and_pandas_output(make_vae, low_rank):
    df = pd.DataFrame(low_rank, columns=[f"f{i}" for i in range(8)])
    vae = make_vae(hidden_layer_sizes=(32,), n_components=3, max_iter=30)
    vae = vae.set_output(transform="pandas").fit(df)
    out = vae.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["vaetransformer0", "vaetransformer1", "vaetransformer2"]
    assert list(vae.feature_names_in_) == list(df.columns)
    assert list(vae.get_feature_names_out()) == list(out.columns)
    assert vae.n_features_in_ == 8


def test_clone_and_params_roundtrip():
    vae = VAETransformer(n_components=4, beta=0.5, hidden_layer_sizes=(8, 4))
    copy = clone(vae)
    assert copy.get_params() == vae.get_params()
    copy.set_params(n_components=7)
    assert copy.n_components == 7 and vae.n_components == 4


@pytest.mark.slow
def test_pipeline_grid_search_with_classifier(make_vae, digits):
    X, y = digits
    pipe = make_pipeline(
        StandardScaler(), make_vae(max_iter=40, learning_rate_init=3e-3, hidden_layer_sizes=(64,)),
        LogisticRegression(max_iter=500),
    )
    grid = GridSearchCV(
        pipe, {"vaetransformer__n_components": [2, 8], "vaetransformer__beta": [0.5, 1.0]},
        cv=3, n_jobs=2,
    )
    grid.fit(X[:600], y[:600])
    assert grid.best_params_["vaetransformer__n_components"] == 8
    # Ten classes: chance is 0.1.
    assert grid.best_score_ > 0.75
    assert grid.score(X[600:900], y[600:900]) > 0.75


def test_grid_search_without_scoring_picks_the_true_dimension(make_vae):
    rng = np.random.RandomState(0)
    W = rng.normal(size=(3, 10))
    X = rng.normal(size=(600, 3)) @ W + 0.3 * rng.normal(size=(600, 10))
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=60, learning_rate_init=3e-3)
    grid = GridSearchCV(vae, {"n_components": [1, 3]}, cv=3).fit(X)
    assert grid.best_params_ == {"n_components": 3}
    scores = grid.cv_results_["mean_test_score"]
    assert scores[1] > scores[0] + 1


def test_cross_val_score_uses_the_likelihood(make_vae, low_rank):
    scores = cross_val_score(make_vae(hidden_layer_sizes=(32,), max_iter=30), low_rank, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_round_trip_in_a_fresh_process(make_vae, tmp_path, low_rank, dump):
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=30).fit(low_rank)
    path = tmp_path / "model.bin"
    np.save(tmp_path / "X.npy", low_rank)
    if dump == "pickle":
        path.write_bytes(pickle.dumps(vae))
        load = "pickle.loads(open(sys.argv[1], 'rb').read())"
    else:
        joblib.dump(vae, path)
        load = "joblib.load(sys.argv[1])"
    script = textwrap.dedent(f"""
        import pickle, sys
        import joblib, numpy as np
        vae = {load}
        X = np.load(sys.argv[2])
        np.save(sys.argv[3], vae.transform(X))
        np.save(sys.argv[4], vae.score_samples(X))
    """)
    out_z, out_s = tmp_path / "z.npy", tmp_path / "s.npy"
    subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "X.npy"), str(out_z), str(out_s)],
        check=True,
    )
    np.testing.assert_array_equal(np.load(out_z), vae.transform(low_rank))
    np.testing.assert_array_equal(np.load(out_s), vae.score_samples(low_rank))
