"""Saving and loading: plain-data state, pickle/joblib/skops round trips, a
fresh process, format versions, damaged files, continued training."""

import io
import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
import torch

from skvae import VAEImputer, VAETransformer
from skvae._persistence import FORMAT, ModelFileError

# No NumPy object either: arrays are saved as their raw bytes, dtype and shape.
PLAIN = (dict, list, tuple, str, int, float, bool, type(None), bytes)


def plain_types(value, path="state"):
    """Paths in ``value`` holding anything but plain data."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in plain_types(v, f"{path}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in plain_types(v, f"{path}[{i}]")]
    return [] if isinstance(value, PLAIN) else [f"{path}: {type(value).__name__}"]


@pytest.fixture(scope="module")
def fitted(table):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(table)


def same_outputs(a, b, X):
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    pd.testing.assert_frame_equal(a.sample(20, random_state=3), b.sample(20, random_state=3))
    pd.testing.assert_frame_equal(a.inverse_transform(a.transform(X)),
                                  b.inverse_transform(b.transform(X)))


def test_saved_state_is_plain_data(fitted):
    state = fitted.__getstate__()
    assert plain_types(state) == []
    assert state["_skvae_format"] == FORMAT
    weight = state["module_"]["weights"]["encoder.0.weight"]
    np.testing.assert_array_equal(
        np.frombuffer(weight["data"], weight["_skvae_array"]).reshape(weight["shape"]),
        fitted.module_.state_dict()["encoder.0.weight"].numpy())


def test_pickle_leaves_no_torch_reference(fitted):
    """The pickle names no torch global: it loads with whatever torch is installed."""
    data = pickle.dumps(fitted)
    import pickletools

    globals_ = {arg for op, arg, _ in pickletools.genops(data) if op.name in
                ("GLOBAL", "STACK_GLOBAL", "SHORT_BINUNICODE", "BINUNICODE") and isinstance(arg, str)}
    assert not any(name.startswith("torch") for name in globals_)


@pytest.mark.parametrize("how", ["pickle", "joblib", "skops"])
def test_round_trip(fitted, table, how):
    if how == "pickle":
        loaded = pickle.loads(pickle.dumps(fitted))
    elif how == "joblib":
        buffer = io.BytesIO()
        joblib.dump(fitted, buffer)
        buffer.seek(0)
        loaded = joblib.load(buffer)
    else:
        sio = pytest.importorskip("skops.io")
        data = sio.dumps(fitted)
        assert sio.get_untrusted_types(data=data) == ["skvae._estimator.VAETransformer"]
        loaded = sio.loads(data, trusted=["skvae._estimator.VAETransformer"])
    same_outputs(fitted, loaded, table)
    assert loaded.get_params() == fitted.get_params()


def test_skops_imputer_trusts_only_skvae_and_sklearn(make_incomplete):
    sio = pytest.importorskip("skops.io")
    _, X, _ = make_incomplete(80, 0.2)
    imputer = VAEImputer(VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0),
                         random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer.fit(X)
    data = sio.dumps(imputer)
    untrusted = sio.get_untrusted_types(data=data)
    assert all(name.startswith("skvae.") for name in untrusted)
    loaded = sio.loads(data, trusted=untrusted)
    np.testing.assert_array_equal(loaded.transform(X), imputer.transform(X))


def test_missing_value_and_conv_models_round_trip(make_vae, make_incomplete, digits):
    _, X, _ = make_incomplete(80, 0.2)
    masked = make_vae(max_iter=2).fit(X)
    loaded = pickle.loads(pickle.dumps(masked))
    np.testing.assert_array_equal(loaded.transform(X), masked.transform(X))
    images = digits[0][:64]
    conv = make_vae(architecture="conv", image_shape=(1, 8, 8), conv_channels=(4,),
                    max_iter=1).fit(images)
    loaded = pickle.loads(pickle.dumps(conv))
    np.testing.assert_array_equal(loaded.transform(images), conv.transform(images))


def test_loaded_model_trains_on_as_the_original(make_vae, correlated):
    """Weights, optimiser state and random stream are all saved: a warm start
    after loading continues exactly as the original would."""
    X = correlated
    vae = make_vae(max_iter=2, warm_start=True).fit(X)
    copy = pickle.loads(pickle.dumps(vae))
    vae.fit(X)
    copy.fit(X)
    np.testing.assert_array_equal(vae.transform(X), copy.transform(X))
    assert vae.loss_curve_ == copy.loss_curve_


def test_loads_in_a_fresh_process(fitted, table, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    table.to_pickle(tmp_path / "table.pkl")
    script = textwrap.dedent(f"""
        import joblib, numpy as np, pandas as pd, torch
        state = torch.get_rng_state()
        model = joblib.load({str(path)!r})
        assert torch.equal(state, torch.get_rng_state())  # loading draws no random numbers
        np.save({str(tmp_path / "codes.npy")!r}, model.transform(pd.read_pickle({str(tmp_path / "table.pkl")!r})))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "codes.npy"), fitted.transform(table))


def test_newer_format_is_refused(fitted):
    state = fitted.__getstate__()
    state["_skvae_format"] = FORMAT + 1
    with pytest.raises(ModelFileError, match="newer version of skvae"):
        VAETransformer.__new__(VAETransformer).__setstate__(state)


def test_modified_weights_are_refused(fitted):
    state = fitted.__getstate__()
    name = next(iter(state["module_"]["weights"]))
    saved = state["module_"]["weights"][name]
    saved["data"] = bytes([saved["data"][0] ^ 1]) + saved["data"][1:]
    with pytest.raises(ModelFileError, match="damaged"):
        VAETransformer.__new__(VAETransformer).__setstate__(state)


def test_inconsistent_state_gets_a_clear_error(fitted):
    """A hand-made state whose checksum matches but whose pieces do not fit."""
    from skvae._persistence import _checksum

    state = fitted.__getstate__()
    name = next(iter(state["module_"]["weights"]))
    state["module_"]["weights"][name] = np.zeros((1, 1), np.float32)
    del state["_skvae_checksum"], state["_skvae_format"]
    state["_skvae_checksum"] = _checksum(state)
    state["_skvae_format"] = FORMAT
    with pytest.raises(ModelFileError, match="cannot be rebuilt"):
        VAETransformer.__new__(VAETransformer).__setstate__(state)


def test_truncated_file_is_refused(fitted, tmp_path):
    data = pickle.dumps(fitted)
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        pickle.loads(data[: len(data) // 2])
    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
        joblib.load(path)


def test_unfitted_estimator_round_trips():
    vae = VAETransformer(n_components=3)
    loaded = pickle.loads(pickle.dumps(vae))
    assert loaded.get_params() == vae.get_params()
    assert not hasattr(loaded, "module_")


def test_state_saved_before_the_plain_data_format_still_loads(fitted, table):
    """Files from before the format version hold torch objects as they are."""
    legacy = {k: v for k, v in fitted.__dict__.items() if k not in ("_structure", "_fit_params")}
    legacy["module_"] = __import__("copy").deepcopy(fitted.module_)
    for likelihood in legacy["module_"].observation.likelihoods:
        likelihood.__dict__.pop("_init_args", None)
    loaded = VAETransformer.__new__(VAETransformer)
    loaded.__setstate__(legacy)
    np.testing.assert_array_equal(loaded.transform(table), fitted.transform(table))
    again = pickle.loads(pickle.dumps(loaded))  # and saves in the current format
    same_outputs(fitted, again, table)
    again.set_params(warm_start=True).fit(table)
