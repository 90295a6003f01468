"""Training and inference on a CUDA device; skipped where there is none.

Run only these with ``python -m pytest -m gpu``.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skvae._data as data
import skvae._training as training
from skvae import VAETransformer
from skvae._elbo import Objective

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

X = (
    np.random.RandomState(0).normal(size=(400, 6)) @ np.random.RandomState(1).normal(size=(6, 6))
).astype(np.float32)


def small(**params):
    defaults = {
        "hidden_layer_sizes": (32,),
        "max_iter": 5,
        "batch_size": 20,
        "random_state": 0,
        "device": "cuda",
    }
    return VAETransformer(**{**defaults, **params})


def fit_quietly(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X)


def test_fit_on_cuda_leaves_a_cpu_model_that_pickles():
    vae = fit_quietly(small(), X)
    assert {p.device.type for p in vae.module_.parameters()} == {"cpu"}
    assert {
        v.device.type for s in vae._optimizer.state.values() for v in s.values()
        if torch.is_tensor(v)
    } == {"cpu"}
    Z = vae.transform(X)
    assert Z.shape == (400, 2) and np.isfinite(Z).all()
    again = pickle.loads(pickle.dumps(vae))
    again.set_params(device="cpu")
    np.testing.assert_allclose(again.transform(X), Z, rtol=1e-4, atol=1e-5)


def test_cuda_training_is_reproducible_and_close_to_cpu():
    a = fit_quietly(small(), X)
    b = fit_quietly(small(), X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    cpu = fit_quietly(small(device="cpu"), X)
    # Different kernels and random streams: the same quality, not the same weights.
    assert a.score(X) == pytest.approx(cpu.score(X), abs=1.0)


def test_warm_start_and_early_stopping_on_cuda():
    vae = fit_quietly(small(warm_start=True, early_stopping=True, n_iter_no_change=2), X)
    n = vae.n_iter_
    fit_quietly(vae, X)
    assert vae.n_iter_ > n and np.isfinite(vae.score(X))


def test_an_epoch_never_synchronises_with_the_host():
    vae = fit_quietly(small(max_iter=1), X)
    device = torch.device("cuda")
    module = vae.module_.to(device)
    optimizer = vae._optimizer
    training.move_optimizer_state(optimizer, device)
    train = training.TrainingData(torch.as_tensor(X, device=device), device)
    generator = data.make_generator(0, device)
    settings = training.TrainingSettings(batch_size=20)
    objective = Objective()

    def loss_fn(x, noise, kl_weight, sample_weight=None):
        return objective(module, x, noise, kl_weight, sample_weight=sample_weight).loss

    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = training.run_epoch(module, optimizer, train, objective, settings, 1.0,
                                  generator, loss_fn)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert loss.device.type == "cuda" and torch.isfinite(loss).item()


def test_data_larger_than_the_device_budget_are_sent_in_chunks(monkeypatch):
    resident = fit_quietly(small(), X)
    monkeypatch.setattr(data, "free_device_bytes", lambda device: 4000)
    chunked = fit_quietly(small(), X)
    np.testing.assert_allclose(resident.loss_curve_, chunked.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(resident.transform(X), chunked.transform(X), rtol=1e-4, atol=1e-5)


def test_bf16_mixed_precision_on_cuda():
    full = fit_quietly(small(max_iter=10), X)
    mixed = fit_quietly(small(max_iter=10, mixed_precision=True), X)
    assert np.isfinite(mixed.loss_curve_).all()
    assert not np.array_equal(full.loss_curve_, mixed.loss_curve_)
    assert mixed.score(X) == pytest.approx(full.score(X), abs=0.5)


def test_distributed_fit_over_nccl_on_one_gpu(tmp_path):
    """One rank of a DDP job on the GPU (the multi-GPU path, minus the peers)."""
    import socket

    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                            world_size=1)
    try:
        vae = fit_quietly(small(distributed=True, device="auto", early_stopping=True), X)
    finally:
        dist.destroy_process_group()
    assert {p.device.type for p in vae.module_.parameters()} == {"cpu"}
    single = fit_quietly(small(early_stopping=True), X)
    assert vae.score(X) == pytest.approx(single.score(X), abs=1.0)


def test_model_fitted_on_cuda_loads_where_there_is_no_gpu(tmp_path):
    import subprocess
    import sys

    import joblib

    vae = fit_quietly(small(device="auto"), X)
    joblib.dump(vae, tmp_path / "model.joblib")
    np.save(tmp_path / "X.npy", X)
    script = (
        "import joblib, numpy as np, torch; assert not torch.cuda.is_available(); "
        f"m = joblib.load({str(tmp_path / 'model.joblib')!r}); "
        f"np.save({str(tmp_path / 'Z.npy')!r}, m.transform(np.load({str(tmp_path / 'X.npy')!r})))"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300,
                   env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""})
    np.testing.assert_allclose(np.load(tmp_path / "Z.npy"), vae.transform(X), rtol=1e-4,
                               atol=1e-5)
