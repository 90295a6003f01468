"""sample_weight: a weighted ELBO (training and validation), checked against
duplicated rows, and routed by scikit-learn's metadata routing."""

import warnings

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvae._training as training
from skvae import VAETransformer
from skvae._elbo import Objective
from skvae._training import TrainingData


def test_weighted_objective_equals_duplicated_rows(make_vae, correlated):
    """At the same weights and noise, integer row weights give the loss of the
    rows repeated that many times (weights scaled to mean 1, as in training)."""
    vae = make_vae(max_iter=1).fit(correlated)
    x = torch.as_tensor(correlated[:12], dtype=torch.float32)
    counts = torch.tensor([1, 2, 3, 0, 1, 1, 4, 1, 2, 1, 1, 3])
    noise = torch.randn(1, 12, vae.n_components, generator=torch.Generator().manual_seed(0))
    weights = counts / counts.float().mean()
    weighted = Objective()(vae.module_, x, noise, sample_weight=weights).loss
    index = torch.arange(12).repeat_interleave(counts)
    duplicated = Objective()(vae.module_, x[index], noise[:, index]).loss
    assert float(weighted.detach()) == pytest.approx(float(duplicated.detach()), rel=1e-5)


def test_weighted_validation_score_equals_duplicated_rows(make_vae, correlated):
    vae = make_vae(max_iter=1).fit(correlated)
    x = torch.as_tensor(correlated[:30], dtype=torch.float32)
    counts = torch.arange(30) % 3
    noise = torch.zeros(1, 1, vae.n_components)
    cpu = torch.device("cpu")
    weighted = training.mean_bound(vae.module_, Objective(),
                                   TrainingData(x, cpu, sample_weight=counts.float()), noise)
    index = torch.arange(30).repeat_interleave(counts)
    duplicated = training.mean_bound(vae.module_, Objective(), TrainingData(x[index], cpu),
                                     noise)
    assert weighted == pytest.approx(duplicated, rel=1e-9)


def test_batches_carry_their_rows_weights():
    x = torch.arange(10.0).reshape(10, 1)
    data = TrainingData(x, torch.device("cpu"), sample_weight=torch.arange(10.0) * 10)
    for chunk_rows in (None, 4):
        data.chunk_rows = chunk_rows
        for rows, weights in training.epoch_batches(data, 4, torch.Generator().manual_seed(0)):
            np.testing.assert_array_equal(weights.numpy(), rows[:, 0].numpy() * 10)


def test_zero_weight_rows_are_not_learned(make_vae):
    """Two clusters; with the second weighted 0, the model fits the first only."""
    rng = np.random.RandomState(0)
    a = rng.normal(size=(150, 4)) * 0.3 + 3
    b = rng.normal(size=(150, 4)) * 0.3 - 3
    X = np.vstack([a, b])
    weights = np.r_[np.ones(150), np.zeros(150)]
    plain = make_vae(max_iter=60, hidden_layer_sizes=(32,)).fit(X)
    weighted = make_vae(max_iter=60, hidden_layer_sizes=(32,)).fit(X, sample_weight=weights)
    assert weighted.score(a) > plain.score(a)
    assert weighted.score(b) < plain.score(b) - 5


def test_unit_weights_change_nothing(make_vae, correlated):
    plain = make_vae(max_iter=3).fit(correlated)
    ones = make_vae(max_iter=3).fit(correlated, sample_weight=np.ones(len(correlated)))
    np.testing.assert_allclose(ones.loss_curve_, plain.loss_curve_, rtol=1e-6)


@pytest.mark.parametrize("weights, message", [
    (-np.ones(200), "Negative values"),
    (np.ones(10), "shape"),
    (np.zeros(200), "non-zero"),
])
def test_bad_weights_are_refused_and_leave_the_model(make_vae, correlated, weights, message):
    vae = make_vae(max_iter=2).fit(correlated)
    before = vae.transform(correlated)
    with pytest.raises(ValueError, match=message):
        vae.fit(correlated, sample_weight=weights)
    np.testing.assert_array_equal(vae.transform(correlated), before)


def test_weights_are_routed_through_a_pipeline_and_a_search(make_vae, correlated):
    weights = np.arange(200) % 3  # 0, 1, 2, ... : every fold has weighted rows
    with sklearn.config_context(enable_metadata_routing=True):
        vae = make_vae(max_iter=2).set_fit_request(sample_weight=True)
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False), vae)
        pipe.fit(correlated, sample_weight=weights)
        direct = make_vae(max_iter=2).fit(pipe[0].transform(correlated), sample_weight=weights)
        np.testing.assert_allclose(pipe[-1].loss_curve_, direct.loss_curve_, rtol=1e-6)
        search = GridSearchCV(make_vae(max_iter=2).set_fit_request(sample_weight=True),
                              {"n_components": [1, 2]}, cv=2)
        search.fit(correlated, sample_weight=weights)
        assert search.best_params_["n_components"] in (1, 2)


def test_zero_weights_on_every_held_out_row_are_refused_clearly(make_vae, correlated,
                                                                monkeypatch):
    # The split holds out the first 20 rows, all of weight 0: there is no
    # score to stop on.
    import skvae._fitting as fitting

    def first_rows_held_out(n_rows, validation_fraction, generator):
        return torch.arange(20, n_rows), torch.arange(20)

    monkeypatch.setattr(fitting, "split_validation", first_rows_held_out)
    weights = np.r_[np.zeros(20), np.ones(len(correlated) - 20)]
    vae = make_vae(max_iter=2).fit(correlated)
    before = vae.transform(correlated)
    vae.set_params(early_stopping=True)
    with pytest.raises(ValueError, match="zero for every row early stopping held out"):
        vae.fit(correlated, sample_weight=weights)
    np.testing.assert_array_equal(vae.transform(correlated), before)
    weights[0] = 1.0  # one held-out row with weight: it trains and stops on it
    assert np.isfinite(vae.fit(correlated, sample_weight=weights).validation_scores_).all()


def test_auto_size_is_chosen_on_the_weighted_rows(make_vae, correlated, monkeypatch):
    seen = []
    original = VAETransformer._train

    def spy(self, X, y, max_iter, continuing, early_stopping, sample_weight=None):
        seen.append((self.n_components, sample_weight is not None))
        return original(self, X, y, max_iter, continuing, early_stopping, sample_weight)

    monkeypatch.setattr(VAETransformer, "_train", spy)
    weights = np.random.RandomState(0).uniform(0.5, 2.0, len(correlated))
    make_vae(n_components="auto", max_iter=2).fit(correlated, sample_weight=weights)
    # The fit ("auto"), and inside it the sizing fit of min(n_features, 64)
    # dimensions: both on the weighted rows.
    assert seen == [("auto", True), (correlated.shape[1], True)]


def test_score_is_the_weighted_mean_of_the_rows_bounds(make_vae, correlated):
    vae = make_vae(max_iter=2).fit(correlated)
    counts = np.arange(len(correlated)) % 3
    np.testing.assert_allclose(
        vae.score(correlated, sample_weight=counts),
        vae.score(np.repeat(correlated, counts, axis=0)), rtol=1e-12)
    assert vae.score(correlated, sample_weight=np.ones(len(correlated))) == pytest.approx(
        vae.score(correlated), rel=1e-12)
    for weights, message in [(np.zeros(200), "non-zero"),
                             (-np.ones(200), "Negative values"), (np.ones(3), "shape")]:
        with pytest.raises(ValueError, match=message):
            vae.score(correlated, sample_weight=weights)


def test_a_search_scores_each_held_out_fold_with_its_weights(make_vae, correlated):
    """Without routing, a search passes sample_weight to fit and to score
    (which used to ignore it, with a warning of statistically incorrect results)."""
    weights = np.arange(200) % 3
    cv = KFold(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(make_vae(max_iter=2), {"n_components": [1]}, cv=cv)
        search.fit(correlated, sample_weight=weights)
    train, test = next(cv.split(correlated))
    fold = make_vae(max_iter=2, n_components=1).fit(correlated[train],
                                                    sample_weight=weights[train])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(
        fold.score(correlated[test], sample_weight=weights[test]), rel=1e-12)


def test_a_routed_pipeline_scores_and_searches(make_vae, correlated):
    """With metadata routing, Pipeline.score passes sample_weight=None on to the
    last step's score, which must accept it; and routed weights score the folds."""
    weights = np.arange(200) % 3
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), make_vae(max_iter=2)).fit(correlated)
        assert pipe.score(correlated) == pytest.approx(
            pipe[-1].score(pipe[0].transform(correlated)))
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False),
                             make_vae(max_iter=2).set_fit_request(sample_weight=True))
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # no "Scoring failed"
            warnings.simplefilter("ignore", ConvergenceWarning)
            search = GridSearchCV(pipe, {"vaetransformer__n_components": [1, 2]},
                                  cv=KFold(2)).fit(correlated, sample_weight=weights)
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
        train, test = next(KFold(2).split(correlated))
        fold = clone(pipe).set_params(vaetransformer__n_components=1)
        fold.fit(correlated[train], sample_weight=weights[train])
        assert search.cv_results_["split0_test_score"][0] == pytest.approx(
            fold.score(correlated[test], sample_weight=weights[test]), rel=1e-12)
    # Opting out scores the folds unweighted.
    with sklearn.config_context(enable_metadata_routing=True):
        vae = make_vae(max_iter=2, n_components=1).set_fit_request(sample_weight=True)
        unweighted = GridSearchCV(vae.set_score_request(sample_weight=False), {},
                                  cv=KFold(2)).fit(correlated, sample_weight=weights)
    fold = make_vae(max_iter=2, n_components=1).fit(correlated[train],
                                                    sample_weight=weights[train])
    assert unweighted.cv_results_["split0_test_score"][0] == pytest.approx(
        fold.score(correlated[test]), rel=1e-12)
