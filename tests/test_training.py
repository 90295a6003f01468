"""The training loop (skvae._training): stopping, the data it reads, the
optimiser, schedules, mixed precision, compilation, interrupts."""

import math
import shutil
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skvae._data as data
import skvae._training as training
from skvae import VAETransformer
from skvae._elbo import Objective
from skvae._training import Plateau, make_optimizer, move_optimizer_state

# ------------------------------------------------------------------ stopping


def test_plateau_counts_epochs_without_improvement():
    plateau = Plateau(tol=0.5, patience=2)
    assert plateau.update(1.0) and plateau.count == 0
    assert plateau.update(1.2) and plateau.count == 1  # a new best, but not by tol
    assert not plateau.update(1.0) and plateau.stalled
    assert plateau.update(3.0) and plateau.count == 0 and not plateau.stalled


def test_early_stopping_stops_on_plateau_and_keeps_best_weights(make_vae, correlated):
    X = correlated
    vae = make_vae(max_iter=300, early_stopping=True, n_iter_no_change=3, tol=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae.fit(X)
    assert vae.n_iter_ < 300
    assert len(vae.validation_scores_) == len(vae.loss_curve_) == vae.n_iter_
    assert vae.best_validation_score_ == max(vae.validation_scores_)
    assert vae.best_loss_ == min(vae.loss_curve_)


def test_best_weights_are_restored(monkeypatch, make_vae, correlated):
    X = correlated
    seen = {}
    original = training.mean_bound

    def recording(module, objective, data, noise, rows=None):
        seen.update(objective=objective, data=data, noise=noise, rows=rows)
        return original(module, objective, data, noise, rows)

    monkeypatch.setattr(training, "mean_bound", recording)
    vae = make_vae(max_iter=40, early_stopping=True, n_iter_no_change=5, learning_rate_init=0.05)
    vae.fit(X)
    best_epoch = int(np.argmax(vae.validation_scores_))
    assert best_epoch < vae.n_iter_ - 1  # the last epoch was not the best
    # Scoring the held-out rows again with the kept weights gives the best score.
    rescored = original(vae.module_, seen["objective"], seen["data"], seen["noise"], seen["rows"])
    assert rescored == pytest.approx(vae.best_validation_score_, abs=1e-5)
    assert rescored > vae.validation_scores_[-1]


def test_max_iter_warns_when_still_improving(make_vae, correlated):
    X = correlated
    with pytest.warns(ConvergenceWarning, match="max_iter=2") as record:
        make_vae(max_iter=2).fit(X)
    # Without held-out rows the warning says what raising max_iter risks, and
    # offers early stopping; with them, it names the held-out score.
    message = str(record[0].message)
    assert "training loss" in message and "early_stopping=True" in message
    with pytest.warns(ConvergenceWarning, match="max_iter=2") as record:
        make_vae(max_iter=2, early_stopping=True).fit(X)
    message = str(record[0].message)
    assert "held-out rows was still improving" in message
    assert "early_stopping=True" not in message


def test_interrupt_leaves_a_working_model(monkeypatch, make_vae, correlated):
    X = correlated
    original, calls = training.run_epoch, []

    def interrupted_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "run_epoch", interrupted_on_third)
    vae = make_vae(max_iter=10)
    with pytest.raises(KeyboardInterrupt, match="interrupted after 2 epochs"):
        vae.fit(X)
    assert vae.n_iter_ == 2
    assert np.isfinite(vae.transform(X)).all() and math.isfinite(vae.score(X))


def test_interrupt_stops_a_search(monkeypatch, make_vae, correlated):
    """A Ctrl-C inside GridSearchCV stops the search (it is not swallowed as a
    failed fit), as a Ctrl-C anywhere else in the program would."""
    from sklearn.model_selection import GridSearchCV

    original, calls = training.run_epoch, []

    def interrupted_on_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "run_epoch", interrupted_on_fourth)
    search = GridSearchCV(make_vae(max_iter=3), {"n_components": [1, 2, 3]}, cv=2,
                          error_score=np.nan)
    with pytest.raises(KeyboardInterrupt):
        search.fit(correlated)
    assert len(calls) == 4  # no fit ran after the interrupt


def test_interrupt_during_set_up_leaves_the_fitted_model(monkeypatch, make_vae, correlated):
    X = correlated
    vae = make_vae(max_iter=2).fit(X)
    before = vae.transform(X)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("skvae._fitting.settings", interrupted)
    with pytest.raises(KeyboardInterrupt):
        vae.fit(X + 1)
    monkeypatch.undo()
    np.testing.assert_array_equal(vae.transform(X), before)


# ------------------------------------------------------------- training data


@pytest.fixture
def training_data(monkeypatch):
    """Records the TrainingData that the estimator hands to the loop."""
    seen = []
    original = training.train_module

    def recording(module, optimizer, data, *args, **kwargs):
        seen.append(data)
        return original(module, optimizer, data, *args, **kwargs)

    monkeypatch.setattr("skvae._fitting.train_module", recording)
    return seen


@pytest.mark.parametrize("early_stopping", [False, True])
def test_float32_training_data_are_used_in_place(
    training_data, make_vae, correlated32, early_stopping
):
    X32 = correlated32
    X = X32.copy()
    make_vae(max_iter=3, batch_size=10, early_stopping=early_stopping).fit(X)
    # The tensor training reads is the caller's array itself, not a copy.
    assert training_data[0].x.data_ptr() == X.ctypes.data
    np.testing.assert_array_equal(X, X32)  # and it was not modified


def test_a_read_only_memory_map_is_trained_on_in_place(training_data, tmp_path, make_vae,
                                                        correlated32):
    path = tmp_path / "rows.npy"
    np.save(path, correlated32)
    X = np.load(path, mmap_mode="r")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae = make_vae(max_iter=2, early_stopping=True).fit(X)
    assert not [w for w in caught if "writable" in str(w.message)]  # torch's warning
    # Training reads the file's pages: no copy of the data in process memory.
    assert training_data[0].x.data_ptr() == X.ctypes.data
    np.testing.assert_array_equal(vae.transform(X), vae.transform(correlated32))


@pytest.mark.parametrize("early_stopping", [False, True])
def test_chunked_transfer_trains_exactly_as_resident_data(
    monkeypatch, make_vae, correlated32, early_stopping
):
    X32 = correlated32
    params = {"early_stopping": early_stopping, "max_iter": 4}
    resident = make_vae(batch_size=10, **params).fit(X32)
    chunks = []
    original = training.run_epoch

    def recording(module, optimizer, data, *args, **kwargs):
        chunks.append(data.chunk_rows)
        return original(module, optimizer, data, *args, **kwargs)

    # 300 rows of 16 bytes; 1 kB "free" leaves 500 bytes: chunks of 30 rows.
    monkeypatch.setattr(data, "free_device_bytes", lambda device: 1000)
    monkeypatch.setattr(training, "run_epoch", recording)
    chunked = make_vae(batch_size=10, **params).fit(X32)
    assert chunks and set(chunks) == {30}
    np.testing.assert_array_equal(resident.loss_curve_, chunked.loss_curve_)
    if early_stopping:
        np.testing.assert_array_equal(resident.validation_scores_, chunked.validation_scores_)
    np.testing.assert_array_equal(resident.transform(X32), chunked.transform(X32))


def test_partial_fit_improves_score_and_checks_features(make_vae, low_rank):
    vae = make_vae(batch_size=25, learning_rate_init=3e-3)
    scores = []
    for _ in range(6):
        for chunk in np.array_split(low_rank, 4):
            vae.partial_fit(chunk)
        scores.append(vae.score(low_rank))
    assert vae.n_iter_ == 24
    assert scores[-1] > scores[0] + 1
    with pytest.raises(ValueError, match="expecting 8 features"):
        vae.partial_fit(low_rank[:, :4])


# ----------------------------------------------------------------- optimiser


def test_optimizer_is_fused_where_torch_supports_it(make_vae, correlated32):
    X32 = correlated32
    module = make_vae(max_iter=1, batch_size=10).fit(X32).module_
    optimizer = make_optimizer(module, 1e-3, 0.0)
    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)
    except (RuntimeError, ValueError):
        pytest.skip("this torch has no fused Adam on the CPU")
    assert all(group["fused"] for group in optimizer.param_groups)


@pytest.mark.parametrize("fused", [False, True])
def test_optimizer_state_follows_the_parameters(fused):
    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([parameter], fused=fused)
    parameter.sum().backward()
    optimizer.step()
    move_optimizer_state(optimizer, torch.device("meta"))
    state = optimizer.state[parameter]
    assert state["exp_avg"].device.type == state["exp_avg_sq"].device.type == "meta"
    # Plain Adam keeps its step counter on the CPU, fused Adam next to the parameter.
    assert state["step"].device.type == ("meta" if fused else "cpu")


def test_warm_start_continues_training(make_vae, correlated):
    X = correlated
    vae = make_vae(warm_start=True, max_iter=3).fit(X)
    first = vae.module_.state_dict()["decoder.0.weight"].clone()
    vae.fit(X)
    assert vae.n_iter_ == 6 and len(vae.loss_curve_) == 6
    assert not torch.equal(first, vae.module_.state_dict()["decoder.0.weight"])
    cold = make_vae(warm_start=False, max_iter=3).fit(X)
    cold.fit(X)
    assert cold.n_iter_ == 3


def test_warm_start_continues_a_fused_optimizer(monkeypatch, make_vae, correlated32):
    X32 = correlated32
    vae = make_vae(max_iter=2, batch_size=10, warm_start=True).fit(X32)
    vae.fit(X32)
    assert vae.n_iter_ == 4
    steps = {float(s["step"]) for s in vae._optimizer.state.values()}
    assert steps == {4 * 30.0}  # 300 rows in batches of 10, four epochs


def test_adaptive_learning_rate_reduces_on_plateau(make_vae, correlated):
    X = correlated
    # Batches of 4 rows: 50 steps per epoch, so the patience is n_iter_no_change's
    # 4 epochs (200 steps), and the rate falls after 2 of them.
    vae = make_vae(learning_rate="adaptive", max_iter=5, n_iter_no_change=4, tol=1e3,
                   batch_size=4, learning_rate_init=1e-3).fit(X)
    assert vae._optimizer.param_groups[0]["lr"] < vae.learning_rate_init


def test_gradient_clipping_bounds_the_step(make_vae, correlated):
    X = correlated
    vae = make_vae(max_iter=1).fit(X)
    module, optimizer = vae.module_, torch.optim.SGD(vae.module_.parameters(), lr=0.0)
    x = torch.as_tensor(X, dtype=torch.float32)
    noise = torch.randn(1, x.shape[0], vae.n_components, generator=torch.Generator().manual_seed(0))
    settings = training.TrainingSettings(max_grad_norm=1e-3)
    loss = lambda x, noise, weight, rows=None: Objective()(module, x, noise, weight).loss  # noqa: E731
    training.train_step(module, optimizer, x, noise, 1.0, settings, loss)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)


# ------------------------------------------------------- objective schedules


def test_kl_warmup_changes_training(make_vae, correlated):
    X = correlated
    plain, warm = make_vae(max_iter=4).fit(X), make_vae(max_iter=4, kl_warmup_epochs=4).fit(X)
    # With a KL weight below one the training loss is lower than the true -ELBO.
    assert warm.loss_curve_[0] < plain.loss_curve_[0]


def test_beta_weights_the_kl_term(make_vae, correlated):
    X = correlated
    low, high = make_vae(beta=0.1, max_iter=30).fit(X), make_vae(beta=4.0, max_iter=30).fit(X)
    # A heavier KL pushes the posterior means towards the prior's.
    assert np.abs(high.transform(X)).mean() < np.abs(low.transform(X)).mean()


def test_importance_weighted_training(make_vae, correlated):
    X = correlated
    vae = make_vae(n_importance_samples=5, max_iter=10).fit(X)
    assert np.isfinite(vae.loss_curve_).all()
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]


# ----------------------------------------------------------- mixed precision


def test_mixed_precision_runs_the_networks_in_bfloat16(monkeypatch, make_vae, correlated32):
    X32 = correlated32
    seen = []
    vae = make_vae(max_iter=1, batch_size=10)
    vae.fit(X32)
    module = vae.module_
    module.encoder.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    x = torch.as_tensor(X32[:20])
    noise = torch.zeros(1, 20, vae.n_components)
    with training.autocast(torch.device("cpu"), True):
        out = Objective()(module, x, noise)
    # The network ran in bfloat16; the objective comes back in float32.
    assert seen == [torch.bfloat16]
    assert out.loss.dtype == out.bound.dtype == torch.float32


def test_mixed_precision_fit_trains_close_to_full_precision(make_vae, correlated32):
    X32 = correlated32
    full = make_vae(max_iter=5, batch_size=10).fit(X32)
    mixed = make_vae(max_iter=5, batch_size=10, mixed_precision=True).fit(X32)
    assert np.isfinite(mixed.loss_curve_).all()
    # bfloat16 changes the trajectory, but not what is learned.
    assert not np.array_equal(full.loss_curve_, mixed.loss_curve_)
    assert mixed.loss_curve_[-1] < mixed.loss_curve_[0]
    assert mixed.score(X32) == pytest.approx(full.score(X32), abs=0.5)
    assert mixed.transform(X32).dtype == np.float32


# --------------------------------------------------------------- compilation


def test_compile_failure_is_reported_clearly(monkeypatch, make_vae, correlated32):
    X32 = correlated32

    def broken(*args, **kwargs):
        raise AssertionError("inductor: no working C++ compiler found\nlong trace ...")

    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: broken)
    with pytest.raises(RuntimeError, match="compile=True: torch.compile could not compile"):
        make_vae(max_iter=3, batch_size=10, compile=True).fit(X32)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile needs a C++ compiler")
def test_compiled_step_trains_as_the_eager_one(make_vae, correlated32):
    X32 = correlated32
    params = {"max_iter": 3, "kl_warmup_epochs": 2, "batch_size": 32}  # a partial last batch
    eager = make_vae(**params).fit(X32)
    compiled = make_vae(compile=True, **params).fit(X32)
    # Same data order, noise and initial weights; the compiled kernels may round
    # differently, so the curves agree closely but not bit for bit.
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=1e-3)
    assert compiled.score(X32) == pytest.approx(eager.score(X32), rel=1e-2)


def test_epoch_loss_is_the_same_when_its_slots_fill_up(monkeypatch, make_vae, correlated32):
    params = {"max_iter": 2, "batch_size": 7}  # 29 batches, the last one partial
    reference = make_vae(**params).fit(correlated32)
    monkeypatch.setattr(training, "LOSS_SLOTS", 4)  # folded every 4 batches
    folded = make_vae(**params).fit(correlated32)
    np.testing.assert_allclose(folded.loss_curve_, reference.loss_curve_, rtol=1e-6)
    np.testing.assert_array_equal(folded.transform(correlated32), reference.transform(correlated32))


# ----------------------------------------------------- recovery and warm starts


def test_training_goes_on_after_a_divergence(make_vae):
    """The optimiser state goes back with the weights, so a lower learning rate
    trains on from the last finite epoch."""
    from skvae import TrainingDivergedError

    X = np.random.RandomState(0).normal(size=(200, 4)) * 1e3
    vae = make_vae(learning_rate_init=1e6, max_iter=20, likelihood="gaussian")
    with pytest.raises(TrainingDivergedError):
        vae.fit(X)
    assert all(torch.isfinite(v).all() for s in vae._optimizer.state.values()
               for v in s.values())
    vae.set_params(learning_rate_init=1e-3)
    for _ in range(3):
        vae.partial_fit(X)
    assert np.isfinite(vae.loss_curve_[-1]) and np.isfinite(vae.score(X))


@pytest.mark.parametrize("name, value", [("n_components", 3), ("hidden_layer_sizes", (8,)),
                                         ("activation", "tanh"), ("min_variance", 0.05)])
def test_structural_change_on_warm_start_is_refused(make_vae, correlated, name, value):
    vae = make_vae(max_iter=2).fit(correlated)
    before = vae.transform(correlated)
    vae.set_params(**{name: value})
    for call in (lambda: vae.set_params(warm_start=True).fit(correlated),
                 lambda: vae.partial_fit(correlated)):
        with pytest.raises(ValueError, match=f"{name} was changed"):
            call()
    np.testing.assert_array_equal(vae.transform(correlated), before)
    vae.set_params(warm_start=False).fit(correlated)  # a fresh fit takes it
    assert getattr(vae, name) == value


def test_default_weight_decay_shrinks_the_networks_and_spares_the_likelihood(make_vae,
                                                                           correlated):
    vae = make_vae(max_iter=3).fit(correlated)
    networks, own = vae._optimizer.param_groups
    assert vae.alpha == 3e-3 and networks["weight_decay"] == 3e-3
    assert own["weight_decay"] == 0.0  # the Gaussian's variances are not penalised

    def squared_norm(fitted):
        return sum(float((p.detach() ** 2).sum()) for net in (fitted.module_.encoder,
                                                             fitted.module_.decoder)
                   for p in net.parameters())

    free = make_vae(max_iter=30, alpha=0.0).fit(correlated)
    penalised = make_vae(max_iter=30, alpha=1.0).fit(correlated)
    assert squared_norm(penalised) < 0.5 * squared_norm(free)


def test_learning_rate_and_alpha_apply_to_a_warm_start(make_vae, correlated):
    vae = make_vae(max_iter=2, warm_start=True).fit(correlated)
    vae.set_params(learning_rate_init=0.05, alpha=0.01)
    vae.partial_fit(correlated)
    networks = vae._optimizer.param_groups[0]
    assert networks["lr"] == 0.05 and networks["weight_decay"] == 0.01
    before = [p.detach().clone() for p in vae.module_.encoder.parameters()]
    vae.set_params(learning_rate_init=1e-12)
    vae.partial_fit(correlated)
    after = list(vae.module_.encoder.parameters())
    assert max(float((a.detach() - b).abs().max()) for a, b in zip(after, before)) < 1e-8


def test_fitted_size_is_used_after_set_params(make_vae, correlated):
    vae = make_vae(n_components=2, max_iter=2).fit(correlated)
    vae.set_params(n_components=3)
    assert vae.sample(4, random_state=0).shape == (4, correlated.shape[1])
    assert np.isfinite(vae.score_samples(correlated)).all()
    assert len(vae.get_feature_names_out()) == 2
    assert vae.inverse_transform(np.zeros((1, 2))).shape == (1, correlated.shape[1])


# ------------------------------------------------- patience, batch and rate


def test_patience_is_at_least_min_patience_steps():
    assert training.patience_epochs(10, 1) == training.MIN_PATIENCE_STEPS
    assert training.patience_epochs(10, 3) == math.ceil(training.MIN_PATIENCE_STEPS / 3)
    assert training.patience_epochs(10, 1000) == 10
    assert training.patience_epochs(500, 1) == 500


def steps_taken(vae):
    return {int(state["step"]) for state in vae._optimizer.state.values()}


@pytest.mark.parametrize("early_stopping", [True, False])
def test_small_table_trains_min_patience_steps_before_stopping(make_vae, early_stopping):
    """On 120 rows an epoch is 4 steps: 10 epochs of patience would be 40 steps,
    and training would stop on its first plateau. With nothing counting as an
    improvement (a huge tol), it stops after exactly the patience in steps."""
    X = np.random.RandomState(0).normal(size=(120, 5))
    vae = make_vae(max_iter=500, tol=1e3, early_stopping=early_stopping)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae.fit(X)
    per_epoch = 4  # 108 or 120 training rows in batches of 32
    assert vae.n_iter_ == training.MIN_PATIENCE_STEPS // per_epoch + 1
    assert steps_taken(vae) == {vae.n_iter_ * per_epoch}
    assert min(steps_taken(vae)) >= training.MIN_PATIENCE_STEPS


def test_large_epochs_keep_n_iter_no_change_epochs(make_vae):
    """With MIN_PATIENCE_STEPS steps in each epoch, the patience is n_iter_no_change."""
    X = np.random.RandomState(0).normal(size=(training.MIN_PATIENCE_STEPS, 3))
    vae = make_vae(max_iter=50, tol=1e3, n_iter_no_change=3, batch_size=1,
                   hidden_layer_sizes=(4,)).fit(X)
    assert vae.n_iter_ == 3 + 1


def test_auto_batch_size():
    auto = training.auto_batch_size
    assert auto(10) == 10  # never more than the rows
    assert auto(100) == training.AUTO_BATCH_MIN
    assert auto(1000) == 250  # a quarter of the rows
    assert auto(10**6) == training.AUTO_BATCH_MAX


def test_batch_size_auto_and_explicit(make_vae, correlated):
    auto = make_vae(max_iter=1).fit(correlated)  # 200 rows: batches of 50
    assert steps_taken(auto) == {4}
    explicit = make_vae(max_iter=1, batch_size=128).fit(correlated)
    assert steps_taken(explicit) == {2}


def test_learning_rate_auto_scales_with_the_batch(make_vae, correlated):
    assert training.auto_learning_rate(training.AUTO_BATCH_MIN) == training.AUTO_LEARNING_RATE
    assert training.auto_learning_rate(4 * 32) == pytest.approx(2 * training.AUTO_LEARNING_RATE)
    for params, expected in [
        ({}, training.auto_learning_rate(50)),  # 200 rows: batches of 50
        ({"batch_size": 128}, training.auto_learning_rate(128)),
        ({"learning_rate_init": 0.01}, 0.01),
    ]:
        vae = make_vae(max_iter=1, **params).fit(correlated)
        assert vae._optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_defaults_with_early_stopping_converge_on_a_small_table(low_rank):
    """At the default settings with early stopping, a small table (300 rows near
    a plane) trains to convergence, with no ConvergenceWarning, for more than the
    patience in steps. (Scored by the importance-weighted bound, its held-out
    rows improve until epoch 153 and training stops at 203: max_iter is raised
    above the default 200 for that; the single-sample ELBO stopped at 177 with
    a held-out score 0.09 nats per row lower.)"""
    vae = VAETransformer(early_stopping=True, max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae.fit(low_rank)
    assert vae.n_iter_ < vae.max_iter
    assert min(steps_taken(vae)) > training.MIN_PATIENCE_STEPS


def test_early_stopping_scores_held_out_rows_with_the_score_bound(low_rank):
    """The validation score is the importance-weighted bound of
    ``n_score_samples`` samples, as ``score`` computes it: tighter than the
    single-sample ELBO (with the ELBO the two fits would be identical)."""
    scores = {}
    for n in (1, 64):
        vae = VAETransformer(early_stopping=True, max_iter=2, n_score_samples=n,
                             random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.fit(low_rank)
        scores[n] = vae.validation_scores_[-1]
    assert scores[64] > scores[1] + 0.1


def test_validation_sample_caps_the_scored_rows(monkeypatch):
    """At most VALIDATION_ROWS held-out rows are scored: a fixed sample, in
    order, drawn from the generator; fewer rows are used whole, drawing nothing."""
    monkeypatch.setattr(training, "VALIDATION_ROWS", 5)
    rows = torch.arange(100, 120)
    generator = torch.Generator().manual_seed(0)
    picked = training.validation_sample(rows, generator)
    assert picked.shape == (5,)
    assert set(picked.tolist()) <= set(rows.tolist())
    assert picked.tolist() == sorted(picked.tolist())
    again = training.validation_sample(rows, torch.Generator().manual_seed(0))
    assert torch.equal(picked, again)
    state = generator.get_state()
    assert training.validation_sample(rows[:5], generator) is not None
    assert torch.equal(training.validation_sample(rows[:5], generator), rows[:5])
    assert torch.equal(generator.get_state(), state)  # nothing drawn


def test_early_stopping_with_a_capped_validation_sample(monkeypatch, low_rank):
    """With more held-out rows than the cap, early stopping still scores,
    keeps its best epoch, and is reproducible."""
    monkeypatch.setattr(training, "VALIDATION_ROWS", 8)
    fits = [VAETransformer(early_stopping=True, validation_fraction=0.2, max_iter=5,
                           random_state=0) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for vae in fits:
            vae.fit(low_rank)
    scores = fits[0].validation_scores_
    assert len(scores) == 5 and np.isfinite(scores).all()
    assert fits[0].best_validation_score_ == max(scores)
    assert scores == fits[1].validation_scores_


class _FailsAtSecondEpoch:
    """A callback that raises in the second epoch."""

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        if context.task_name == "epoch" and context.task_id == 1:
            raise RuntimeError("boom")
        return False


def _fitted_state(vae, X):
    groups = [{k: v for k, v in g.items() if k != "params"}
              for g in vae._optimizer.param_groups]
    moments = {k: v.clone() for k, v in vae._optimizer.state_dict()["state"][0].items()}
    return (vae.transform(X), vae.n_features_in_, vae.n_iter_, list(vae.loss_curve_),
            groups, moments)


def _assert_same_state(before, after):
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1:5] == before[1:5]
    for key in before[5]:
        assert torch.equal(after[5][key], before[5][key])


def test_an_error_while_training_fewer_epochs_restores_the_model(make_vae, correlated):
    """A fresh refit that fails with fewer epochs than the model it replaces
    leaves the previous model as it was, and says so."""
    vae = make_vae(max_iter=3).fit(correlated)
    before = _fitted_state(vae, correlated)
    vae.set_callbacks(_FailsAtSecondEpoch())
    with pytest.raises(RuntimeError, match="boom") as caught:
        vae.fit(np.c_[correlated, correlated])
    _assert_same_state(before, _fitted_state(vae, correlated))
    assert "keeps the model it held before the call (n_iter_=3)" in str(caught.value.__notes__)


def test_an_error_while_warm_training_keeps_the_epochs_reached(make_vae, correlated):
    """A warm start trains the same model further: the epochs it completed
    before a callback's error are kept (and the error says so)."""
    settings = dict(warm_start=True, learning_rate_init=0.5, alpha=0.3)
    vae = make_vae(max_iter=3).fit(correlated)
    twin = make_vae(max_iter=3).fit(correlated).set_params(max_iter=2, **settings)
    vae.set_callbacks(_FailsAtSecondEpoch())
    with pytest.raises(RuntimeError, match="boom") as caught:
        vae.set_params(**settings).fit(correlated)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        twin.fit(correlated)  # the two epochs the failed call completed
    assert vae.n_iter_ == 5 and vae.loss_curve_ == twin.loss_curve_
    _assert_same_state(_fitted_state(twin, correlated), _fitted_state(vae, correlated))
    np.testing.assert_array_equal(vae.kl_per_component_, twin.kl_per_component_)
    assert "keeps the weights it reached (n_iter_=5" in str(caught.value.__notes__)


def test_refused_weights_leave_the_optimiser_settings(make_vae, correlated):
    vae = make_vae(max_iter=3, warm_start=True).fit(correlated)
    before = _fitted_state(vae, correlated)
    vae.set_params(learning_rate_init=0.5, alpha=0.3)
    with pytest.raises(ValueError, match="non-zero"):
        vae.fit(correlated, sample_weight=np.zeros(len(correlated)))
    _assert_same_state(before, _fitted_state(vae, correlated))
