"""Training behaviour: early stopping, warm-up, schedules, progress, reproducibility."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skvae._training as training
from skvae import VAETransformer
from skvae._elbo import Objective
from skvae._training import Plateau

X = np.random.RandomState(0).normal(size=(200, 6)) @ np.random.RandomState(1).normal(size=(6, 6))


def small(**params):
    return VAETransformer(**{"hidden_layer_sizes": (16,), "max_iter": 5, "random_state": 0, **params})


def test_plateau_counts_epochs_without_improvement():
    plateau = Plateau(tol=0.5, patience=2)
    assert plateau.update(1.0) and plateau.count == 0
    assert plateau.update(1.2) and plateau.count == 1  # a new best, but not by tol
    assert not plateau.update(1.0) and plateau.stalled
    assert plateau.update(3.0) and plateau.count == 0 and not plateau.stalled


def test_early_stopping_stops_on_plateau_and_keeps_best_weights():
    vae = small(max_iter=300, early_stopping=True, n_iter_no_change=3, tol=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae.fit(X)
    assert vae.n_iter_ < 300
    assert len(vae.validation_scores_) == len(vae.loss_curve_) == vae.n_iter_
    assert vae.best_validation_score_ == max(vae.validation_scores_)
    assert vae.best_loss_ == min(vae.loss_curve_)


def test_best_weights_are_restored(monkeypatch):
    seen = {}
    original = training.mean_bound

    def recording(module, objective, x, noise, rows=None):
        seen.update(objective=objective, x=x, noise=noise, rows=rows)
        return original(module, objective, x, noise, rows)

    monkeypatch.setattr(training, "mean_bound", recording)
    vae = small(max_iter=40, early_stopping=True, n_iter_no_change=5, learning_rate_init=0.05)
    vae.fit(X)
    best_epoch = int(np.argmax(vae.validation_scores_))
    assert best_epoch < vae.n_iter_ - 1  # the last epoch was not the best
    # Scoring the held-out rows again with the kept weights gives the best score.
    rescored = original(vae.module_, seen["objective"], seen["x"], seen["noise"], seen["rows"])
    assert rescored == pytest.approx(vae.best_validation_score_, abs=1e-5)
    assert rescored > vae.validation_scores_[-1]


def test_max_iter_warns_when_still_improving():
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        small(max_iter=2).fit(X)


def test_same_seed_is_bit_identical_and_other_seed_differs():
    a, b = small(random_state=3).fit(X), small(random_state=3).fit(X)
    c = small(random_state=4).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    np.testing.assert_array_equal(a.sample(5, random_state=0), b.sample(5, random_state=0))
    assert a.loss_curve_ == b.loss_curve_
    assert not np.allclose(a.transform(X), c.transform(X))


def test_global_random_states_are_untouched():
    np.random.seed(123)
    torch.manual_seed(123)
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    vae = small(random_state=None, early_stopping=True).fit(X)
    vae.sample(3)
    vae.score_samples(X)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_random_state_none_gives_different_models():
    a, b = small(random_state=None).fit(X), small(random_state=None).fit(X)
    assert not np.allclose(a.transform(X), b.transform(X))


def test_verbose_zero_prints_nothing(capsys):
    small(verbose=0).fit(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_prints_one_line_per_epoch_in_logs(capsys):
    small(verbose=1, max_iter=3, early_stopping=True).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3, loss = ") and "val_elbo" in lines[0]
    assert "\r" not in "".join(lines)


def test_partial_fit_improves_score_and_checks_features(low_rank):
    vae = small(batch_size=25, learning_rate_init=3e-3)
    scores = []
    for _ in range(6):
        for chunk in np.array_split(low_rank, 4):
            vae.partial_fit(chunk)
        scores.append(vae.score(low_rank))
    assert vae.n_iter_ == 24
    assert scores[-1] > scores[0] + 1
    with pytest.raises(ValueError, match="expecting 8 features"):
        vae.partial_fit(low_rank[:, :4])


def test_warm_start_continues_training():
    vae = small(warm_start=True, max_iter=3).fit(X)
    first = vae.module_.state_dict()["decoder.0.weight"].clone()
    vae.fit(X)
    assert vae.n_iter_ == 6 and len(vae.loss_curve_) == 6
    assert not torch.equal(first, vae.module_.state_dict()["decoder.0.weight"])
    cold = small(warm_start=False, max_iter=3).fit(X)
    cold.fit(X)
    assert cold.n_iter_ == 3


def test_kl_warmup_changes_training():
    plain, warm = small(max_iter=4).fit(X), small(max_iter=4, kl_warmup_epochs=4).fit(X)
    # With a KL weight below one the training loss is lower than the true -ELBO.
    assert warm.loss_curve_[0] < plain.loss_curve_[0]


def test_beta_weights_the_kl_term():
    low, high = small(beta=0.1, max_iter=30).fit(X), small(beta=4.0, max_iter=30).fit(X)
    # A heavier KL pushes the posterior means towards the prior's.
    assert np.abs(high.transform(X)).mean() < np.abs(low.transform(X)).mean()


def test_importance_weighted_training():
    vae = small(n_importance_samples=5, max_iter=10).fit(X)
    assert np.isfinite(vae.loss_curve_).all()
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]


def test_adaptive_learning_rate_reduces_on_plateau():
    vae = small(learning_rate="adaptive", max_iter=8, n_iter_no_change=4, tol=1e3).fit(X)
    assert vae._optimizer.param_groups[0]["lr"] < vae.learning_rate_init


def test_gradient_clipping_bounds_the_step():
    vae = small(max_iter=1).fit(X)
    module, optimizer = vae.module_, torch.optim.SGD(vae.module_.parameters(), lr=0.0)
    x = torch.as_tensor(X, dtype=torch.float32)
    noise = torch.randn(1, x.shape[0], vae.n_components, generator=torch.Generator().manual_seed(0))
    settings = training.TrainingSettings(max_grad_norm=1e-3)
    loss = lambda x, noise, weight: Objective()(module, x, noise, weight).loss  # noqa: E731
    training.train_step(module, optimizer, x, noise, 1.0, settings, loss)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_interrupt_leaves_a_working_model(monkeypatch):
    original, calls = training.run_epoch, []

    def interrupted_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "run_epoch", interrupted_on_third)
    vae = small(max_iter=10)
    with pytest.warns(UserWarning, match="interrupted after 2 epochs"):
        vae.fit(X)
    assert vae.n_iter_ == 2
    assert np.isfinite(vae.transform(X)).all() and math.isfinite(vae.score(X))
