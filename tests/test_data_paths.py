"""How training reads its data: no copies, chunked transfer, fused Adam, bf16 autocast."""

import shutil
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skvae._data as data
import skvae._statistics as statistics
import skvae._training as training
from skvae import VAETransformer
from skvae._elbo import Objective
from skvae._training import make_optimizer, move_optimizer_state

X32 = (
    np.random.RandomState(0).normal(size=(300, 4)) @ np.random.RandomState(1).normal(size=(4, 4))
).astype(np.float32)


def small(**params):
    defaults = {"hidden_layer_sizes": (16,), "max_iter": 3, "batch_size": 10, "random_state": 0}
    return VAETransformer(**{**defaults, **params})


def fit_quietly(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # few epochs on purpose
        return estimator.fit(X)


# ---------------------------------------------------------- statistics in chunks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_moments_match_a_float64_two_pass_computation(monkeypatch, dtype):
    monkeypatch.setattr(statistics, "CHUNK_ROWS", 7)  # many uneven chunks
    rng = np.random.RandomState(0)
    X = (rng.normal(size=(50, 5)) * [1, 10, 1e-3, 100, 1] + [0, 1e4, 5, -3, 0]).astype(dtype)
    columns = [0, 1, 3, 4]
    mean, std = statistics.column_moments(X, columns)
    reference = X[:, columns].astype(np.float64)
    # float32 chunks are centred in float32: accurate to float32's precision.
    rtol = 1e-6 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(mean, reference.mean(axis=0), rtol=rtol)
    np.testing.assert_allclose(std, reference.std(axis=0), rtol=rtol)
    mean, std = statistics.column_moments(np.abs(X), None, transform=np.log1p)
    logged = np.log1p(np.abs(X).astype(np.float64))
    np.testing.assert_allclose(mean, logged.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std, logged.std(axis=0), rtol=1e-10)


def test_float32_and_float64_input_give_the_same_scaling():
    a = fit_quietly(small(max_iter=1), X32).module_.observation.likelihoods[0]
    b = fit_quietly(small(max_iter=1), X32.astype(np.float64)).module_.observation.likelihoods[0]
    for name in ["loc", "scale", "variance_floor"]:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6)


# ------------------------------------------------------------------- no copies


@pytest.mark.parametrize("early_stopping", [False, True])
def test_float32_training_data_are_used_in_place(monkeypatch, early_stopping):
    seen = {}
    original = training.train_module

    def recording(module, optimizer, data, *args, **kwargs):
        seen["x"] = data.x
        return original(module, optimizer, data, *args, **kwargs)

    monkeypatch.setattr("skvae._estimator.train_module", recording)
    X = X32.copy()
    fit_quietly(small(early_stopping=early_stopping), X)
    # The tensor training reads is the caller's array itself, not a copy.
    assert seen["x"].data_ptr() == X.ctypes.data
    np.testing.assert_array_equal(X, X32)  # and it was not modified


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


@pytest.mark.parametrize("early_stopping", [False, True])
def test_chunked_transfer_trains_exactly_as_resident_data(monkeypatch, early_stopping):
    params = {"early_stopping": early_stopping, "max_iter": 4}
    resident = fit_quietly(small(**params), X32)
    chunks = []
    original = training.run_epoch

    def recording(module, optimizer, data, *args, **kwargs):
        chunks.append(data.chunk_rows)
        return original(module, optimizer, data, *args, **kwargs)

    # 300 rows of 16 bytes; 1 kB "free" leaves 500 bytes: chunks of 30 rows.
    monkeypatch.setattr(data, "free_device_bytes", lambda device: 1000)
    monkeypatch.setattr(training, "run_epoch", recording)
    chunked = fit_quietly(small(**params), X32)
    assert chunks and set(chunks) == {30}
    np.testing.assert_array_equal(resident.loss_curve_, chunked.loss_curve_)
    if early_stopping:
        np.testing.assert_array_equal(resident.validation_scores_, chunked.validation_scores_)
    np.testing.assert_array_equal(resident.transform(X32), chunked.transform(X32))


# ------------------------------------------------------------------- optimiser


def test_optimizer_is_fused_where_torch_supports_it():
    module = fit_quietly(small(max_iter=1), X32).module_
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


def test_warm_start_continues_a_fused_optimizer(monkeypatch):
    vae = fit_quietly(small(max_iter=2, warm_start=True), X32)
    fit_quietly(vae, X32)
    assert vae.n_iter_ == 4
    steps = {float(s["step"]) for s in vae._optimizer.state.values()}
    assert steps == {4 * 30.0}  # 300 rows in batches of 10, four epochs


# ------------------------------------------------------------- mixed precision


def test_mixed_precision_runs_the_networks_in_bfloat16(monkeypatch):
    seen = []
    vae = small(max_iter=1)
    fit_quietly(vae, X32)
    module = vae.module_
    module.encoder.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    x = torch.as_tensor(X32[:20])
    noise = torch.zeros(1, 20, vae.n_components)
    with training.autocast(torch.device("cpu"), True):
        out = Objective()(module, x, noise)
    # The network ran in bfloat16; the objective comes back in float32.
    assert seen == [torch.bfloat16]
    assert out.loss.dtype == out.bound.dtype == torch.float32


def test_mixed_precision_fit_trains_close_to_full_precision():
    full = fit_quietly(small(max_iter=5), X32)
    mixed = fit_quietly(small(max_iter=5, mixed_precision=True), X32)
    assert np.isfinite(mixed.loss_curve_).all()
    # bfloat16 changes the trajectory, but not what is learned.
    assert not np.array_equal(full.loss_curve_, mixed.loss_curve_)
    assert mixed.loss_curve_[-1] < mixed.loss_curve_[0]
    assert mixed.score(X32) == pytest.approx(full.score(X32), abs=0.5)
    assert mixed.transform(X32).dtype == np.float32


# ------------------------------------------------------------------ compilation


def test_compile_failure_is_reported_clearly(monkeypatch):
    def broken(*args, **kwargs):
        raise AssertionError("inductor: no working C++ compiler found\nlong trace ...")

    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: broken)
    with pytest.raises(RuntimeError, match="compile=True: torch.compile could not compile"):
        small(compile=True).fit(X32)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile needs a C++ compiler")
def test_compiled_step_trains_as_the_eager_one():
    params = {"max_iter": 3, "kl_warmup_epochs": 2, "batch_size": 32}  # a partial last batch
    eager = fit_quietly(small(**params), X32)
    compiled = fit_quietly(small(compile=True, **params), X32)
    # Same data order, noise and initial weights; the compiled kernels may round
    # differently, so the curves agree closely but not bit for bit.
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=1e-3)
    assert compiled.score(X32) == pytest.approx(eager.score(X32), rel=1e-2)
