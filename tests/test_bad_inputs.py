"""The bad-input suite: an exhaustive table of awkward inputs, parameters and
call orders. Each case must end in a clear error naming the problem (a
ValueError or TypeError whose message is skvae's or scikit-learn's, not a torch
internal) or in a finite result of the right shape, and must leave the user's
input unmodified.

Run ``python tests/test_bad_inputs.py`` for the counts of each outcome.
"""

import copy
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError

from skvae import TrainingDivergedError, VAEImputer, VAETransformer

RNG = np.random.RandomState(0)
X = RNG.normal(size=(40, 3))
FRAME = pd.DataFrame({"x": RNG.normal(size=40), "n": RNG.poisson(3, size=40),
                      "c": pd.Categorical(RNG.choice(["a", "b"], size=40)),
                      "s": RNG.choice(["u", "v"], size=40).astype(object),
                      "b": RNG.uniform(size=40) < 0.5})

# Messages that mean an internal failure leaked through instead of a clear error.
INTERNAL = re.compile(
    r"mat1 and mat2|size mismatch|Expected .* tensor|expected scalar type|"
    r"Tensor|has no attribute|object is not|unsupported operand|index \d+ is out of bounds|"
    r"not subscriptable|NoneType|could not broadcast"
)


class AnnData:
    """A stand-in for anndata's AnnData (which skvae does not depend on): an
    object with no array interface, from the anndata package."""

    def __init__(self, X):
        self.X = X
        self.shape = X.shape

    def __eq__(self, other):  # for the check that the input is left unmodified
        return isinstance(other, AnnData) and np.array_equal(self.X, other.X)

    __hash__ = None


AnnData.__module__ = "anndata._core.anndata"


def small(**params):
    return VAETransformer(**{"hidden_layer_sizes": (8,), "max_iter": 2, "random_state": 0,
                             **params})


def fitted(data=X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return small(**params).fit(data)


def with_column(frame, name, values):
    frame = frame.copy()
    frame[name] = values
    return frame


def nan_at(data, rows, cols):
    data = np.array(data, dtype=float)
    data[rows, cols] = np.nan
    return data


# ------------------------------------------------------------------ the table
# (name, make the arguments, the call, expected: "ok" or a regex of the error)

def fit_cases():
    bad_arrays = {
        "empty rows": (np.empty((0, 3)), "0 sample"),
        "no features": (np.empty((5, 0)), "0 feature"),
        "1-D": (X[:, 0], "2D array"),
        "3-D": (X.reshape(40, 3, 1), "dim 3|3D|2D"),
        "scalar": (np.float64(1.0), "2D array|scalar"),
        "strings": (np.array([["a", "b"], ["c", "d"]]),
                    "Column 0 holds strings such as 'a'"),
        "rows with strings": ([[1.0, "red"], [2.0, "blue"]], "Column 1 holds strings"),
        "AnnData": (AnnData(X), r"adata\.X"),
        "dict": ({"a": [1.0, 2.0]}, "type dict, which has no array or table interface"),
        "complex": (X.astype(complex), "[Cc]omplex"),
        "inf": (np.where(X > 2, np.inf, X), "infinity|inf"),
        "-inf": (np.where(X > 2, -np.inf, X), "infinity|inf"),
        "all missing": (np.full((10, 3), np.nan), "no observed|missing"),
        "sparse with NaN": (sp.csr_matrix(np.where(X > 1, np.nan, X)),
                            "sparse matrix with NaN entries"),
        "huge": (X * 1e300, "rescale|range"),
        "tiny": (X * 1e-300, "rescale|range"),
        "None": (None, "None|array"),
        "ragged list": ([[1.0, 2.0], [3.0]], "inhomogeneous|sequence|shape"),
    }
    for name, (data, error) in bad_arrays.items():
        yield f"fit {name}", data, lambda d: small().fit(d), error
    good_arrays = {
        "float32": X.astype(np.float32),
        "ints": RNG.randint(0, 5, size=(40, 3)),
        "bools": RNG.uniform(size=(40, 3)) < 0.5,
        "object numbers": X.astype(object),
        "list of lists": X.tolist(),
        "one row": X[:1],
        "two rows": X[:2],
        "constant column": np.column_stack([X[:, :2], np.ones(40)]),
        "all constant": np.ones((10, 3)),
        "some missing": nan_at(X, [0, 5, 9], [0, 1, 2]),
        "missing row": nan_at(X, [3, 3, 3], [0, 1, 2]),
        "scaled 1e-30": X * 1e-30,
        "scaled 1e30": X * 1e30,
        "offset 1e6": X + 1e6,
        "float16": X.astype(np.float16),
        "Fortran order": np.asfortranarray(X),
        "read-only": np.require(X, requirements=["C"]).copy(),
    }
    good_arrays["read-only"].setflags(write=False)
    for name, data in good_arrays.items():
        yield f"fit {name}", data, lambda d: small().fit(d).transform(d), "ok"
    frames = {
        "mixed": (FRAME, "ok"),
        "Int64 with NA": (with_column(FRAME, "n", pd.array([None] + [1] * 39, "Int64")), "ok"),
        "boolean with NA": (with_column(FRAME, "b", pd.array([None] + [True] * 39, "boolean")),
                            "ok"),
        "category with NaN": (with_column(FRAME, "c", pd.Categorical([None] + ["a"] * 39)),
                              "ok"),
        "string dtype": (with_column(FRAME, "s", FRAME["s"].astype("string")), "ok"),
        "datetime": (with_column(FRAME, "d", pd.date_range("2020", periods=40)),
                     "dtype datetime"),
        "timedelta": (with_column(FRAME, "d", pd.to_timedelta(np.arange(40), unit="D")),
                      "dtype timedelta"),
        "complex column": (with_column(FRAME, "z", X[:, 0] * 1j), "dtype complex"),
        "no columns": (FRAME[[]], "0 feature"),
        "no rows": (FRAME.iloc[:0], "0 sample"),
        "empty category": (with_column(FRAME, "c", pd.Categorical([None] * 40,
                                                                  categories=["a"])),
                           "no values|missing|observed"),
        "negative counts as negbinom": (FRAME, "non-negative|negative|counts"),
    }
    for name, (data, expected) in frames.items():
        params = {"likelihood": {"x": "negbinom"}} if "negbinom" in name else {}
        yield (f"fit frame {name}", data,
               lambda d, p=params: small(**p).fit(d).transform(d), expected)


def parameter_cases():
    bad = {
        "n_components=0": {"n_components": 0},
        "n_components=1.5": {"n_components": 1.5},
        "n_components='2'": {"n_components": "2"},
        "hidden_layer_sizes=(0,)": {"hidden_layer_sizes": (0,)},
        "hidden_layer_sizes=(-1,)": {"hidden_layer_sizes": (-1,)},
        "activation='sigmoid'": {"activation": "sigmoid"},
        "likelihood='normal'": {"likelihood": "normal"},
        "likelihood list too short": {"likelihood": ["gaussian"]},
        "likelihood dict unknown column": {"likelihood": {7: "gaussian"}},
        "likelihood=bernoulli on reals": {"likelihood": "bernoulli"},
        "likelihood=poisson on reals": {"likelihood": "poisson"},
        "likelihood=categorical on conv": {"likelihood": "categorical",
                                           "architecture": "conv", "image_shape": (1, 3, 1)},
        "architecture='rnn'": {"architecture": "rnn"},
        "conv without image_shape": {"architecture": "conv"},
        "conv image_shape mismatch": {"architecture": "conv", "image_shape": (1, 2, 2)},
        "min_variance=0": {"min_variance": 0},
        "beta=-1": {"beta": -1.0},
        "max_iter=0": {"max_iter": 0},
        "batch_size=0": {"batch_size": 0},
        "learning_rate_init=0": {"learning_rate_init": 0.0},
        "learning_rate='cosine'": {"learning_rate": "cosine"},
        "validation_fraction=1": {"validation_fraction": 1.0},
        "tol=-1": {"tol": -1.0},
        "device='mps'": {"device": "mps"},
        "device='meta'": {"device": "meta"},
        "device='tpu'": {"device": "tpu"},
        "random_state='abc'": {"random_state": "abc"},
        "random_state=1.5": {"random_state": 1.5},
        # As in scikit-learn's estimators (sample() takes one, as SciPy's do).
        "random_state Generator": {"random_state": np.random.default_rng(0)},
        "encoder not callable": {"encoder": 3},
        "n_importance_samples=0": {"n_importance_samples": 0},
        "n_score_samples=0": {"n_score_samples": 0},
        "max_grad_norm=0": {"max_grad_norm": 0.0},
        "compile with distributed": {"compile": True, "distributed": True},
        "handle_unknown='raise'": {"handle_unknown": "raise"},
        "min_frequency=0": {"min_frequency": 0},
        "min_frequency=1.0": {"min_frequency": 1.0},
        "min_frequency=-0.5": {"min_frequency": -0.5},
        "max_categories=0": {"max_categories": 0},
        "max_categories=2.5": {"max_categories": 2.5},
    }
    if not torch.cuda.is_available():
        bad["device='cuda' without CUDA"] = {"device": "cuda"}
    for name, params in bad.items():
        yield f"param {name}", X, lambda d, p=params: small(**p).fit(d), "."
    good = {
        "batch_size > rows": {"batch_size": 1000},
        "early stopping on 5 rows": {"early_stopping": True},
        "n_components > features": {"n_components": 6},
        "random_state RandomState": {"random_state": np.random.RandomState(0)},
        "likelihood list": {"likelihood": ["gaussian"] * 3},
        "adaptive learning rate": {"learning_rate": "adaptive"},
        "kl warm-up": {"kl_warmup_epochs": 5},
        "IWAE": {"n_importance_samples": 3},
        "beta=0": {"beta": 0.0},
        "hidden_layer_sizes=()": {"hidden_layer_sizes": ()},
        "hidden_layer_sizes=4": {"hidden_layer_sizes": 4},
        "device='cpu'": {"device": "cpu"},
        "max_grad_norm=1": {"max_grad_norm": 1.0},
    }
    for name, params in good.items():
        data = X[:5] if "5 rows" in name else X
        yield (f"param {name}", data,
               lambda d, p=params: small(**p).fit(d).transform(d), "ok")


def method_cases():
    model = fitted()
    frame_model = fitted(FRAME)
    cases = {
        "transform unfitted": (X, lambda d: small().transform(d), "not fitted"),
        "score unfitted": (X, lambda d: small().score(d), "not fitted"),
        "sample unfitted": (None, lambda d: small().sample(3), "not fitted"),
        "inverse unfitted": (X[:, :2], lambda d: small().inverse_transform(d), "not fitted"),
        "transform wrong width": (X[:, :2], model.transform, "features"),
        "transform inf": (np.where(X > 2, np.inf, X), model.transform, "infinity|inf"),
        "transform strings": (np.array([["a", "b", "c"]]), model.transform,
                              "Column 0 holds strings such as 'a'"),
        "transform AnnData": (AnnData(X), model.transform, r"adata\.X"),
        "inverse strings": (np.array([[0.0, "z"]], dtype=object), model.inverse_transform,
                            "Column 1 holds strings such as 'z'.*latent codes"),
        "transform missing": (nan_at(X, [0], [1]), model.transform, "ok"),
        "transform huge": (X * 1e300, model.transform, "ok"),
        "transform float32": (X.astype(np.float32), model.transform, "ok"),
        "transform one row": (X[:1], model.transform, "ok"),
        "transform frame to array model": (FRAME[["x", "n", "b"]].astype(float),
                                           model.transform, "ok|feature names"),
        "transform array to frame model": (X, frame_model.transform, "DataFrame"),
        # Treated as missing entries, with a warning (handle_unknown="warn").
        "transform frame unseen category": (with_column(FRAME, "s", "w"),
                                            frame_model.transform, "ok"),
        "transform frame unseen category refused": (
            with_column(FRAME, "s", "w"), fitted(FRAME, handle_unknown="error").transform,
            "not seen in fit"),
        "transform frame missing column": (FRAME.drop(columns="x"), frame_model.transform,
                                           "feature names|features"),
        "transform frame datetime": (with_column(FRAME, "x", pd.date_range("2020",
                                                                             periods=40)),
                                     frame_model.transform, "dtype datetime"),
        "transform frame strings in numbers": (with_column(FRAME, "x", "abc"),
                                               frame_model.transform, "not numbers"),
        "inverse wrong width": (np.zeros((2, 3)), model.inverse_transform, "n_components"),
        "inverse NaN codes": (np.full((2, 2), np.nan), model.inverse_transform, "NaN"),
        "inverse inf codes": (np.full((2, 2), np.inf), model.inverse_transform,
                              "infinity|inf"),
        "inverse frame model": (np.zeros((2, 2)), frame_model.inverse_transform, "ok"),
        "score_samples K=0": (X, lambda d: model.score_samples(d, n_importance_samples=0),
                              "positive integer"),
        "score_samples K=1.5": (X, lambda d: model.score_samples(d, n_importance_samples=1.5),
                                "positive integer"),
        "score_samples K=1": (X, lambda d: model.score_samples(d, n_importance_samples=1),
                              "ok"),
        "score frame": (FRAME, frame_model.score_samples, "ok"),
        "sample 0": (None, lambda d: model.sample(0), "positive integer"),
        "sample -1": (None, lambda d: model.sample(-1), "positive integer"),
        "sample 1.5": (None, lambda d: model.sample(1.5), "positive integer"),
        "sample True": (None, lambda d: model.sample(True), "positive integer"),
        "sample '3'": (None, lambda d: model.sample("3"), "positive integer"),
        "sample random_state 'abc'": (None, lambda d: model.sample(3, random_state="abc"),
                                      "random_state"),
        "sample random_state 1.5": (None, lambda d: model.sample(3, random_state=1.5),
                                    "random_state"),
        "sample Generator": (None,
                             lambda d: model.sample(3, random_state=np.random.default_rng(0)),
                             "ok"),
        "sample frame": (None, lambda d: frame_model.sample(5, random_state=0), "ok"),
        "sample large": (None, lambda d: model.sample(20000, random_state=0), "ok"),
    }
    for name, (data, call, expected) in cases.items():
        yield f"method {name}", data, call, expected


def order_cases():
    def refit_other_width(d):
        model = fitted()
        model.fit(d)
        return model.transform(d)

    def partial_then_other_width(d):
        model = small()
        model.partial_fit(X)
        return model.partial_fit(d)

    def warm_start_other_width(d):
        model = fitted(warm_start=True)
        return model.fit(d)

    def fit_after_failed_fit(d):
        model = fitted()
        before = model.transform(X)
        with pytest.raises(ValueError):
            model.fit(np.full((4, 3), np.inf))
        np.testing.assert_array_equal(model.transform(X), before)
        return model.fit(d).transform(d)

    def transform_after_set_params(d):
        model = fitted()
        model.set_params(n_components=5)
        return model.transform(d), model.sample(3), model.score_samples(d)

    def partial_after_set_params(d):
        model = fitted()
        model.set_params(hidden_layer_sizes=(4,))
        return model.partial_fit(d)

    def partial_fit_then_fit(d):
        model = small()
        model.partial_fit(d)
        return model.fit(d).transform(d)

    def imputer_all_missing_column(d):
        data = nan_at(d, slice(None), 0)
        return VAEImputer(small(), random_state=0).fit_transform(data)

    def imputer_unfitted(d):
        return VAEImputer().transform(d)

    yield "order refit with other width", X[:, :2], refit_other_width, "ok"
    yield "order partial_fit other width", X[:, :2], partial_then_other_width, "features"
    yield "order warm start other width", X[:, :2], warm_start_other_width, "features"
    yield "order fit after failed fit", X, fit_after_failed_fit, "ok"
    yield "order methods after set_params", X, transform_after_set_params, "ok"
    yield "order partial_fit after set_params", X, partial_after_set_params, "was changed"
    yield "order partial_fit then fit", X, partial_fit_then_fit, "ok"
    yield "order imputer all-missing column", X, imputer_all_missing_column, "ok"
    yield "order imputer unfitted", X, imputer_unfitted, "not fitted"


CASES = [*fit_cases(), *parameter_cases(), *method_cases(), *order_cases()]


def finite(result):
    """Whether every number in ``result`` is finite."""
    if isinstance(result, tuple):
        return all(finite(r) for r in result)
    if isinstance(result, VAETransformer):
        return np.isfinite(result.loss_curve_[-1])
    if isinstance(result, pd.DataFrame):
        numbers = result.select_dtypes("number")
        return bool(np.isfinite(numbers.to_numpy(float)).all())
    return bool(np.isfinite(np.asarray(result, dtype=float)).all())


def run(case):
    """Run a case; returns ("error", message) or ("ok", result)."""
    name, data, call, expected = case
    before = copy.deepcopy(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call(data)
        outcome = ("ok", result)
    except (ValueError, TypeError, NotFittedError, TrainingDivergedError) as error:
        outcome = ("error", f"{type(error).__name__}: {error}")
    unchanged(before, data)
    return outcome


def unchanged(before, after):
    if isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(before, after)
    elif isinstance(before, np.ndarray):
        np.testing.assert_array_equal(before, after)
    elif sp.issparse(before):  # NaN entries compare equal here
        for part in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(getattr(before, part), getattr(after, part))
    else:
        assert before == after or (before is None and after is None)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_case(case):
    kind, value = run(case)
    expected = case[3]
    if kind == "error":
        assert not INTERNAL.search(value), f"unclear error: {value}"
        assert expected != "ok", f"expected a result, got {value}"
        assert re.search(expected, value), f"error does not name the problem: {value}"
    else:
        assert expected == "ok" or "ok" in expected.split("|"), f"expected an error ({expected})"
        assert finite(value), "result holds NaN or infinity"


if __name__ == "__main__":  # pragma: no cover - the counts for a report
    counts = {"clear error": 0, "correct result": 0, "other": 0}
    for case in CASES:
        try:
            test_case(case)
            counts["clear error" if run(case)[0] == "error" else "correct result"] += 1
        except AssertionError as failure:
            counts["other"] += 1
            print(f"{case[0]}: {failure}")
    print(f"{len(CASES)} cases: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def test_extreme_float32_rows_score_finite_as_in_float64():
    X = np.random.RandomState(0).normal(size=(40, 3))
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X)
    far = X[:3] * np.array([[1e20], [1.0], [1e30]])  # squared errors overflow float32
    scores32 = vae.score_samples(far.astype(np.float32))
    assert np.isfinite(scores32).all()
    np.testing.assert_allclose(scores32, vae.score_samples(far), rtol=1e-4)


# ------------------------------------ strings in arrays, AnnData, other objects

COLORS = ["red", "blue"] * 20
TABLE_ROWS = [[float(x), color] for x, color in zip(X[:, 0], COLORS)]
STRING_INPUTS = {
    "object array": np.array(TABLE_ROWS, dtype=object),
    "list of rows": TABLE_ROWS,
    "str array": np.array(TABLE_ROWS),  # NumPy makes the numbers strings too
}
ADVICE = (r"Column 1 holds strings such as 'red'.*pandas \(or polars\) DataFrame"
          r".*categorical.*encode the column")


def fitted_2d():
    return fitted(X[:, :2])


METHODS = {
    "fit": lambda data: small().fit(data),
    "partial_fit": lambda data: small().partial_fit(data),
    "transform": lambda data: fitted_2d().transform(data),
    "score_samples": lambda data: fitted_2d().score_samples(data),
    "score": lambda data: fitted_2d().score(data),
    "imputer fit": lambda data: VAEImputer(small()).fit(data),
    "imputer transform": lambda data: VAEImputer(small()).fit(X[:, :2]).transform(data),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", STRING_INPUTS)
def test_strings_in_an_array_name_the_column_and_the_remedy(method, kind):
    with pytest.raises(ValueError, match=ADVICE):
        METHODS[method](STRING_INPUTS[kind])


def test_the_imputer_suggests_a_string_as_missing_values():
    with pytest.raises(ValueError, match=r"If 'red' marks the missing entries, set "
                                         r"missing_values='red'"):
        VAEImputer(small()).fit(STRING_INPUTS["object array"])


def test_a_string_missing_values_placeholder_is_read_as_missing():
    data = X[:, :2].astype(object)
    data[[0, 3], 1] = "?"
    out = VAEImputer(small(), missing_values="?", random_state=0).fit_transform(data)
    assert out.dtype == np.float64 and np.isfinite(out).all()
    np.testing.assert_array_equal(out[1:3], X[1:3, :2])
    # Other strings are still named.
    data[5, 0] = "n/a"
    with pytest.raises(ValueError, match="Column 0 holds strings such as 'n/a'"):
        VAEImputer(small(), missing_values="?").fit(data)


def test_a_list_of_strings_is_named_without_a_column():
    with pytest.raises(ValueError, match="^X holds strings such as 'a'.*DataFrame"):
        small().fit(["a", "b"])


def test_strings_in_latent_codes_are_named():
    codes = [[0.0, "red"], [1.0, "blue"]]
    with pytest.raises(ValueError,
                       match="Column 1 holds strings such as 'red'.*latent codes"):
        fitted().inverse_transform(codes)


def test_numbers_written_as_strings_are_still_read():
    data = X[:, :2].astype(str).astype(object)
    np.testing.assert_array_equal(fitted(data).transform(data),
                                  fitted(X[:, :2]).transform(X[:, :2]))


def test_other_objects_in_an_object_array_keep_numpys_error():
    # scikit-learn's check_dtype_object expects NumPy's TypeError for a dict.
    data = X.astype(object)
    data[0, 0] = {"foo": "bar"}
    with pytest.raises(TypeError, match="argument must be .* string.* number"):
        small().fit(data)


ANNDATA_METHODS = {
    "fit": (lambda a: small().fit(a), r"adata\.obsm\['X_vae'\] = vae\.fit_transform"),
    "partial_fit": (lambda a: small().partial_fit(a), r"adata\.obsm"),
    "transform": (lambda a: fitted().transform(a), r"adata\.obsm"),
    "score_samples": (lambda a: fitted().score_samples(a), r"adata\.obsm"),
    "inverse_transform": (lambda a: fitted().inverse_transform(a),
                          r"inverse_transform\(adata\.obsm\['X_vae'\]\)"),
    "imputer fit": (lambda a: VAEImputer(small()).fit(a), r"adata\.layers\['imputed'\]"),
    "imputer transform": (lambda a: VAEImputer(small()).fit(X).transform(a),
                          r"adata\.layers\['imputed'\]"),
}


@pytest.mark.parametrize("method", ANNDATA_METHODS)
def test_an_anndata_is_told_to_pass_its_matrix(method):
    call, where = ANNDATA_METHODS[method]
    with pytest.raises(TypeError, match="AnnData") as error:
        call(AnnData(X))
    message = str(error.value)
    assert re.search(where, message), message
    if method != "inverse_transform":
        assert "adata.X" in message and "adata.layers['counts']" in message


def test_an_array_from_the_anndata_package_is_read():
    # adata.X of a view is an ndarray subclass from anndata: an array, not an AnnData.
    view = type("ArrayView", (np.ndarray,), {"__module__": "anndata._core.views"})
    data = X.view(view)
    np.testing.assert_array_equal(fitted(data).transform(data), fitted(X).transform(X))


def test_a_real_anndata_is_told_to_pass_its_matrix():
    anndata = pytest.importorskip("anndata")
    adata = anndata.AnnData(X.astype(np.float32))
    with pytest.raises(TypeError, match=r"adata\.X.*adata\.obsm"):
        small().fit(adata)
    vae = small().fit(adata.X)
    adata.obsm["X_vae"] = vae.transform(adata.X)
    assert vae.inverse_transform(adata.obsm["X_vae"]).shape == adata.shape
    assert vae.transform(adata[:5].X).shape == (5, 2)  # a view's X is an array


@pytest.mark.parametrize("data, name", [
    ({"x": [1.0, 2.0]}, "dict"),
    (object(), "object"),
    ("1.0, 2.0", "str"),
    ((row for row in X), "generator"),
    (AnnData, "type"),  # the class, not an instance
])
def test_an_object_without_an_array_interface_is_told_what_to_pass(data, name):
    message = (f"X is of type {name}, which has no array or table interface: pass a "
               "2-D NumPy array")
    with pytest.raises(TypeError, match=message):
        small().fit(data)
    with pytest.raises(TypeError, match=message):
        VAEImputer(small()).fit(data)


def test_an_empty_polars_frame_is_refused_like_a_pandas_one():
    pl = pytest.importorskip("polars")
    with pytest.raises(ValueError, match=r"0 sample\(s\) \(shape=\(0, 1\)\)"):
        small().fit(pl.DataFrame({"x": []}, schema={"x": pl.Float64}))
    with pytest.raises(ValueError, match=r"shape=\(0, 0\)"):  # polars: no columns, no rows
        small().fit(pl.DataFrame({"x": [1.0, 2.0]}).select([]))


def test_sparse_input_is_read_as_the_dense_matrix():
    np.testing.assert_array_equal(small().fit(sp.csr_matrix(X)).transform(X),
                                  small().fit(X).transform(X))
