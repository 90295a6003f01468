"""ONNX export: the graphs compute what transform and inverse_transform do."""

import builtins
import importlib

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

from skvae import VAETransformer
from skvae.onnx import export_decoder, export_encoder

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnx")

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def _data(kind):
    rng = np.random.RandomState(0)
    if kind == "gaussian":
        return {}, rng.normal(size=(80, 5)) * 3 + 2
    if kind == "bernoulli":
        return {"likelihood": "bernoulli"}, rng.rand(80, 6)
    if kind in ("poisson", "negbinom"):
        return {"likelihood": kind}, rng.poisson(3.0, size=(80, 4)).astype(float)
    if kind == "mixed":
        X = np.c_[rng.normal(size=80), rng.poisson(2.0, 80), rng.normal(size=80), rng.rand(80)]
        return {"likelihood": ["gaussian", "poisson", "gaussian", "bernoulli"]}, X
    if kind == "conv":
        options = {"architecture": "conv", "image_shape": (1, 6, 5), "conv_channels": (4, 8),
                   "likelihood": "bernoulli"}
        return options, rng.rand(80, 30)
    if kind in ("depth", "zinb"):  # 25 count columns: the row total is modelled
        scale = rng.gamma(0.5, 4.0, size=(1, 25)) * rng.lognormal(0, 0.4, size=(80, 1))
        return ({"likelihood": "negbinom" if kind == "depth" else kind},
                rng.poisson(scale).astype(float))
    if kind == "missing":
        X = rng.normal(size=(80, 5))
        X[rng.rand(*X.shape) < 0.2] = np.nan
        return {}, X
    raise ValueError(kind)


KINDS = ["gaussian", "bernoulli", "poisson", "negbinom", "mixed", "conv", "missing", "depth",
         "zinb"]


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=KINDS)
def exported(request, tmp_path_factory):
    """A tiny fitted model of each kind, its data and its two graphs' sessions."""
    options, X = _data(request.param)
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0, **options).fit(X)
    if request.param in ("depth", "zinb"):
        assert vae.module_.observation.likelihoods[0].depth
    folder = tmp_path_factory.mktemp(request.param)
    encoder = _session(export_encoder(vae, folder / "encoder.onnx"))
    decoder = _session(export_decoder(vae, folder / "decoder.onnx"))
    return vae, X.astype(np.float32), encoder, decoder


def _decoder_mean(vae, Z):
    """The decoder's mean, before inverse_transform decodes (rounds) it."""
    module = vae.module_.eval()
    with torch.no_grad():
        return module.observation.mean(module.decode(torch.from_numpy(Z))).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("n_rows", [1, 37])
def test_encoder_matches_transform(exported, n_rows):
    vae, X, encoder, _ = exported
    Z = encoder.run(["Z"], {"X": X[:n_rows]})[0]
    assert Z.dtype == np.float32 and Z.shape == (n_rows, vae.n_components)
    np.testing.assert_allclose(Z, vae.transform(X[:n_rows]), **TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("n_rows", [1, 37])
def test_decoder_matches_mean(exported, n_rows):
    vae, X, _, decoder = exported
    Z = vae.transform(X[:n_rows])
    means = decoder.run(["X"], {"Z": Z})[0]
    assert means.dtype == np.float32 and means.shape == (n_rows, X.shape[1])
    np.testing.assert_allclose(means, _decoder_mean(vae, Z), **TOLERANCE)


@pytest.mark.slow
def test_decoder_gives_inverse_transform_of_arrays(exported):
    """For a model fitted on an array, inverse_transform is the graph's output,
    with count columns rounded as the user guide says."""
    vae, X, _, decoder = exported
    Z = vae.transform(X[:37])
    expected = decoder.run(["X"], {"Z": Z})[0]
    counts = [spec.likelihood in ("poisson", "negbinom", "zip", "zinb") for spec in vae._specs]
    expected[:, counts] = np.maximum(np.rint(expected[:, counts]), 0)
    np.testing.assert_allclose(expected, vae.inverse_transform(Z), **TOLERANCE)


def _finish(means, frame):
    """The Python-side step the user guide describes: a DataFrame of
    ``frame``'s columns and dtypes, booleans thresholded, integers rounded."""
    columns = {}
    for j, (name, dtype) in enumerate(frame.dtypes.items()):
        values = means[:, j]
        if pd.api.types.is_bool_dtype(dtype):
            values = values >= 0.5
        elif pd.api.types.is_integer_dtype(dtype):
            values = np.rint(values)
            if (frame[name] >= 0).all():  # counts (negbinom under "auto")
                values = np.maximum(values, 0)
        columns[name] = pd.Series(values).astype(dtype)
    return pd.DataFrame(columns)


def test_decoder_finished_in_python_gives_inverse_transform_of_frames(tmp_path):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({
        "height": rng.normal(170, 10, 80),
        "visits": rng.poisson(0.4, 80).astype(np.int64),
        "smoker": rng.rand(80) < 0.3,
        "balance": rng.randint(-5000, 5000, 80),
    })
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(frame)
    decoder = _session(export_decoder(vae, tmp_path / "d.onnx"))
    Z = vae.transform(frame.iloc[:37]).astype(np.float32)
    means = decoder.run(["X"], {"Z": Z})[0]
    expected = vae.inverse_transform(Z)
    got = _finish(means, frame)
    pd.testing.assert_frame_equal(got[["smoker", "visits"]], expected[["smoker", "visits"]])
    np.testing.assert_allclose(got["height"], expected["height"], rtol=1e-5)
    # An integer far from 0 modelled as Gaussian: float32 rounding may move
    # a value within an ulp of a half integer to the other neighbour.
    assert np.abs(got["balance"] - expected["balance"]).max() <= 1


@pytest.mark.slow
def test_encoder_takes_missing_entries_as_nan(exported):
    """NaN entries are filled in the graph as transform fills them, for models
    fitted with or without missing values."""
    vae, X, encoder, _ = exported
    if getattr(vae.module_.observation.likelihoods[0], "depth", False):
        pytest.skip("a model of the row total refuses rows with missing counts")
    rows = np.nan_to_num(X[:37].copy(), nan=0.5)
    rows[np.random.RandomState(1).rand(*rows.shape) < 0.3] = np.nan
    Z = encoder.run(["Z"], {"X": rows})[0]
    np.testing.assert_allclose(Z, vae.transform(rows), **TOLERANCE)


def test_float64_graphs(tmp_path):
    options, X = _data("gaussian")
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0, **options).fit(X)
    encoder = _session(export_encoder(vae, tmp_path / "e.onnx", dtype="float64"))
    decoder = _session(export_decoder(vae, tmp_path / "d.onnx", dtype="float64"))
    Z = encoder.run(["Z"], {"X": X[:5]})[0]
    assert Z.dtype == np.float64
    np.testing.assert_allclose(Z, vae.transform(X[:5]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(decoder.run(["X"], {"Z": Z})[0], vae.inverse_transform(Z),
                               rtol=1e-12, atol=1e-12)
    # The model's own weights stay float32.
    assert next(vae.module_.parameters()).dtype == torch.float32


def test_metadata_and_file_is_self_contained(tmp_path):
    import onnx

    X = pd.DataFrame(np.random.RandomState(0).normal(size=(50, 3)), columns=["a", "b", "c"])
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X)
    path = export_encoder(vae, str(tmp_path / "encoder.onnx"))
    assert path == str(tmp_path / "encoder.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.onnx"]
    model = onnx.load(path)
    onnx.checker.check_model(model)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["feature_names"] == '["a", "b", "c"]'
    assert props["n_components"] == "2"
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value")


def test_unfitted_model(tmp_path):
    with pytest.raises(NotFittedError):
        export_encoder(VAETransformer(), tmp_path / "e.onnx")
    with pytest.raises(NotFittedError):
        export_decoder(VAETransformer(), tmp_path / "d.onnx")
    assert not list(tmp_path.iterdir())


def test_unsupported_cases(tmp_path):
    X = np.random.RandomState(0).normal(size=(50, 3))
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="dtype must be one of"):
        export_encoder(vae, tmp_path / "e.onnx", dtype="float16")
    with pytest.raises(TypeError, match="expects a fitted VAETransformer"):
        export_decoder(object(), tmp_path / "d.onnx")
    frame = pd.DataFrame({"x": X[:, 0], "colour": np.array(["red", "blue"] * 25)})
    categorical = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(frame)
    for export in (export_encoder, export_decoder):
        with pytest.raises(ValueError, match="Categorical columns"):
            export(categorical, tmp_path / "c.onnx")
    assert not list(tmp_path.iterdir())


def test_missing_packages_named(monkeypatch, tmp_path):
    X = np.random.RandomState(0).normal(size=(50, 3))
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X)
    real_import = builtins.__import__

    def without_onnxscript(name, *args, **kwargs):
        if name == "onnxscript":
            raise ImportError("No module named 'onnxscript'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnxscript)
    with pytest.raises(ImportError, match=r"pip install 'skvae\[onnx\]'"):
        export_encoder(vae, tmp_path / "e.onnx")


def test_module_imports_without_onnx():
    """skvae.onnx itself imports nothing of onnx until an export runs."""
    module = importlib.import_module("skvae.onnx")
    assert "onnx" not in vars(module) and "onnxruntime" not in vars(module)


def _covariate_frame(n=120):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    frame["batch"] = pd.Categorical(rng.choice(["A", "B", "C"], n))
    frame["dose"] = rng.uniform(0, 2, n)
    return frame


@pytest.mark.parametrize("encode_covariates", [False, True])
def test_models_with_covariates(tmp_path, encode_covariates):
    """The encoder takes the full coded rows; the decoder takes Z and the
    coded covariates "C", and gives inverse_transform under them."""
    import json

    import onnx

    from skvae.onnx import covariate_input

    frame = _covariate_frame()
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0,
                         covariates=["batch", "dose"],
                         encode_covariates=encode_covariates).fit(frame)
    encoder = _session(export_encoder(vae, tmp_path / "e.onnx"))
    decoder = _session(export_decoder(vae, tmp_path / "d.onnx"))
    assert [i.name for i in decoder.get_inputs()] == ["Z", "C"]
    categories = vae.column_likelihoods_["batch"]["support"]
    coded = frame.assign(batch=[categories.index(b) for b in frame["batch"]])
    Z = encoder.run(["Z"], {"X": coded.to_numpy(np.float32)})[0]
    np.testing.assert_allclose(Z, vae.transform(frame), **TOLERANCE)
    # Per-row values, and one value for every row.
    given = frame[["batch", "dose"]].iloc[::-1].reset_index(drop=True)
    for covariates in (given, {"batch": "B", "dose": 0.5}):
        C = covariate_input(vae, covariates)
        C = np.broadcast_to(C, (len(Z), 2)).copy()
        means = decoder.run(["X"], {"Z": Z, "C": C})[0]
        expected = vae.inverse_transform(Z, covariates=covariates)
        np.testing.assert_allclose(means[:, :4], expected.iloc[:, :4].to_numpy(), **TOLERANCE)
        np.testing.assert_array_equal(means[:, 5], expected["dose"].to_numpy(np.float32))
        np.testing.assert_array_equal(means[:, 4],
                                      [categories.index(b) for b in expected["batch"]])
    props = {p.key: p.value for p in onnx.load(tmp_path / "d.onnx").metadata_props}
    assert json.loads(props["covariates"]) == [
        {"name": "batch", "column": 4, "categories": ["A", "B", "C"]},
        {"name": "dose", "column": 5, "categories": None}]


def test_covariate_input_refusals():
    from skvae.onnx import covariate_input

    frame = _covariate_frame(60)
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=1, random_state=0,
                         covariates=["batch"]).fit(frame.drop(columns="dose"))
    assert covariate_input(vae, [["C"], ["A"]], dtype="float64").tolist() == [[2.0], [0.0]]
    with pytest.raises(ValueError, match="not seen in fit"):
        covariate_input(vae, {"batch": "D"})
    plain = VAETransformer(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(
        frame[["a", "b"]])
    with pytest.raises(ValueError, match="this model has no covariates"):
        covariate_input(plain, {"batch": "A"})
