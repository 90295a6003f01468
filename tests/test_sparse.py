"""Sparse input: scipy CSR and CSC matrices (and arrays) in every method, read a
batch at a time, never densified whole, with the results of the dense matrix."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from skvae import VAETransformer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def counts(n=240, d=30, seed=0):
    """Sparse-looking counts: two groups of rows with different profiles."""
    rng = np.random.RandomState(seed)
    groups = rng.randint(2, size=n)
    profile = rng.gamma(0.4, 2.0, size=(2, d))
    X = rng.poisson(profile[groups] * rng.lognormal(0, 0.3, size=(n, 1)))
    return X.astype(np.float64), groups


X, GROUPS = counts()
PARAMS = {"n_components": 2, "hidden_layer_sizes": (16,), "likelihood": "negbinom",
          "max_iter": 4, "random_state": 0}


def outputs(vae, data):
    return {
        "transform": vae.transform(data),
        "score_samples": vae.score_samples(data),
        "score": vae.score(data),
        "sample": vae.sample(5, random_state=1),
        "loss_curve": np.asarray(vae.loss_curve_),
        "kl": vae.kl_per_component_,
    }


@pytest.mark.parametrize("kind", [sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array])
@pytest.mark.parametrize("extra", [{}, {"early_stopping": True, "batch_size": 50},
                                   {"count_depth": "none"}, {"likelihood": "zinb"}],
                         ids=["plain", "early_stopping", "no_depth", "zinb"])
def test_sparse_fits_and_scores_exactly_as_the_dense_matrix(kind, extra):
    dense = VAETransformer(**{**PARAMS, **extra}).fit(X)
    sparse = VAETransformer(**{**PARAMS, **extra}).fit(kind(X))
    # 30 count columns: "auto" models the depth, unless told not to.
    assert dense.module_.observation.likelihoods[0].depth == ("count_depth" not in extra)
    want, got = outputs(dense, X), outputs(sparse, kind(X))
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # And a model fitted on either reads the other.
    np.testing.assert_array_equal(dense.transform(kind(X)), want["transform"])


def test_partial_fit_and_warm_start_on_sparse_rows():
    dense = VAETransformer(**PARAMS)
    sparse = VAETransformer(**PARAMS)
    for start in range(0, len(X), 80):
        dense.partial_fit(X[start:start + 80])
        sparse.partial_fit(sp.csr_matrix(X[start:start + 80]))
    np.testing.assert_array_equal(sparse.transform(X), dense.transform(X))
    sparse.set_params(warm_start=True).fit(sp.csr_matrix(X))
    dense.set_params(warm_start=True).fit(X)
    np.testing.assert_array_equal(sparse.score_samples(X), dense.score_samples(X))


def test_float32_sparse_input_gives_float32_codes_and_is_not_changed():
    data = sp.csr_matrix(X.astype(np.float32))
    # Unsorted column indices within rows (as some writers leave them).
    data.indices, data.data = data.indices.copy(), data.data.copy()
    for row in range(data.shape[0]):
        part = slice(data.indptr[row], data.indptr[row + 1])
        data.indices[part], data.data[part] = data.indices[part][::-1], data.data[part][::-1]
    data.has_sorted_indices = False
    before = data.copy()
    vae = VAETransformer(**PARAMS).fit(data)
    assert vae.transform(data).dtype == np.float32
    assert vae.score_samples(data).dtype == np.float64
    for part in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(data, part), getattr(before, part))
    np.testing.assert_array_equal(vae.transform(data), VAETransformer(**PARAMS).fit(
        X.astype(np.float32)).transform(X.astype(np.float32)))


def test_a_fit_densifies_a_batch_at_a_time_never_the_whole_matrix(monkeypatch):
    """No step of fit, transform or score_samples turns the whole matrix dense:
    statistics and inference read at most ``SPARSE_BATCH_BYTES`` at a time
    (here set to 60 rows' worth), training a batch, and the Gaussian's value
    gaps a block of 16 columns."""
    import skvae._data

    monkeypatch.setattr(skvae._data, "SPARSE_BATCH_BYTES", 60 * 8 * X.shape[1])
    shapes = []
    original = sp.csr_matrix.toarray

    def recorded(self, *args, **kwargs):
        shapes.append(self.shape)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", recorded)
    params = {**PARAMS, "likelihood": "gaussian", "max_iter": 2, "batch_size": 100,
              "early_stopping": True}
    vae = VAETransformer(**params).fit(sp.csr_matrix(X))
    assert {rows for rows, _ in shapes} >= {60, 100}  # statistics, training batches
    vae.transform(sp.csr_matrix(X))
    vae.score_samples(sp.csr_matrix(X))
    assert {rows for rows, _ in shapes[-2:]} == {60}
    assert all(rows <= 100 or columns <= 16 for rows, columns in shapes)
    # Reading in smaller pieces changes nothing.
    monkeypatch.undo()
    np.testing.assert_allclose(vae.transform(X),
                               VAETransformer(**params).fit(X).transform(X), rtol=1e-6)


def test_sparse_codes_feed_a_pipeline_and_pickle():
    pipe = make_pipeline(VAETransformer(**{**PARAMS, "max_iter": 30}),
                         KNeighborsClassifier(5)).fit(sp.csr_matrix(X), GROUPS)
    assert pipe.score(sp.csr_matrix(X), GROUPS) > 0.8
    loaded = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(loaded.predict(sp.csr_matrix(X)), pipe.predict(X))


@pytest.mark.parametrize(
    "bad, message",
    [
        (sp.csr_matrix(np.where(X > 3, np.nan, X)),
         "sparse matrix with NaN entries.*pass a dense array"),
        (sp.csr_matrix(np.where(X > 3, np.inf, X)), "infinity"),
        (sp.csr_matrix(np.where(np.arange(30) == 7, -X, X)),
         "column 7 has negative or fractional values"),
        (sp.csr_matrix(np.where(np.arange(30) == 4, X + 0.5, X)),
         "column 4 has negative or fractional values"),
        (sp.csr_matrix(X[:, :5]), "X has 5 features, but VAETransformer is expecting 30"),
    ],
    ids=["nan", "inf", "negative", "fractional", "width"],
)
@pytest.mark.parametrize("chunk", [None, 3], ids=["whole", "in-chunks"])
def test_bad_sparse_input_is_named(monkeypatch, bad, message, chunk):
    """Also where the stored values are read a few at a time (a bad value in
    a later chunk than the first)."""
    if chunk:
        monkeypatch.setattr("skvae._tables.STORED_CHUNK", chunk)
    fitted = VAETransformer(**PARAMS).fit(sp.csr_matrix(X))
    method = fitted.transform if "expecting" in message else VAETransformer(**PARAMS).fit
    with pytest.raises(ValueError, match=message):
        method(bad)


def test_implicit_zeros_are_checked_against_the_support():
    """A zero is outside a support that starts above it: zeros that are not
    stored count as much as stored ones."""
    from skvae import Likelihood

    class AboveOne(Likelihood):
        name = "above_one"

        def check_support(self, values, names):
            if (values < 1).any():
                raise ValueError("values below 1")

        def log_prob(self, params, x):
            return -((x - params) ** 2).sum(-1)

        def mean(self, params):
            return params

        def sample(self, params, generator):
            return params

    ones = sp.csr_matrix(np.ones((20, 3)))
    VAETransformer(likelihood=AboveOne, max_iter=1).fit(ones)
    with_zero = ones.tolil()
    with_zero[3, 1] = 0
    with pytest.raises(ValueError, match="values below 1"):
        VAETransformer(likelihood=AboveOne, max_iter=1).fit(with_zero.tocsr())


def test_likelihoods_that_recode_refuse_sparse_input_clearly():
    with pytest.raises(ValueError, match="'categorical' recodes .* pass a dense array"):
        VAETransformer(likelihood="categorical", max_iter=1).fit(sp.csr_matrix(X))


def test_sparse_training_on_a_mixed_observation_reads_each_block():
    """Per-column likelihoods on a sparse matrix: each block's support is checked
    in chunks, with its own columns named."""
    likelihood = ["gaussian"] * 10 + ["poisson"] * 20
    vae = VAETransformer(**{**PARAMS, "likelihood": likelihood}).fit(sp.csr_matrix(X))
    np.testing.assert_array_equal(
        vae.transform(sp.csr_matrix(X)),
        VAETransformer(**{**PARAMS, "likelihood": likelihood}).fit(X).transform(X))
    bad = X.copy()
    bad[5, 12] = 0.5
    with pytest.raises(ValueError, match="column 12 has negative or fractional"):
        vae.transform(sp.csr_matrix(bad))


def test_the_rows_read_for_a_batch_are_the_dense_rows():
    from skvae._data import SparseRows

    rows = SparseRows(sp.csc_matrix(X))
    index = torch.tensor([5, 0, 17])
    np.testing.assert_array_equal(rows.tensor(torch.float32)[index].numpy(),
                                  X[[5, 0, 17]].astype(np.float32))
    np.testing.assert_array_equal(rows[10:13], X[10:13])
    assert rows.shape == X.shape and len(rows) == len(X)


@pytest.mark.parametrize(
    "data, expected",
    [
        (X.astype(np.int64), "negbinom"),
        (X.astype(np.uint16), "negbinom"),
        (sp.csr_matrix(X), "negbinom"),  # float values, all whole: counts
        (sp.csr_matrix(X.astype(np.float32)), "negbinom"),
        (X.astype(np.int64) - 1, "gaussian"),  # negative: not counts
        (sp.csr_matrix(X / 2), "gaussian"),  # fractional
        (X, "gaussian"),  # a float array is read as measurements
    ],
    ids=["int64", "uint16", "sparse", "sparse float32", "negative", "fractional", "float"],
)
@pytest.mark.parametrize("chunk", [None, 3], ids=["whole", "in-chunks"])
def test_auto_reads_integer_arrays_and_sparse_counts_as_counts(monkeypatch, data, expected,
                                                               chunk):
    if chunk:
        monkeypatch.setattr("skvae._tables.STORED_CHUNK", chunk)
    vae = VAETransformer(**{**PARAMS, "likelihood": "auto", "max_iter": 1}).fit(data)
    assert {c["likelihood"] for c in vae.column_likelihoods_.values()} == {expected}
    assert vae.transform(data).dtype == (np.float32 if data.dtype == np.float32 else np.float64)


def test_a_model_fitted_on_integers_reads_floats_alike():
    vae = VAETransformer(**{**PARAMS, "likelihood": "auto"}).fit(X.astype(np.int32))
    np.testing.assert_array_equal(vae.transform(X), vae.transform(X.astype(np.int32)))
    np.testing.assert_array_equal(
        VAETransformer(**PARAMS).fit(X).transform(X), vae.transform(X))


def test_building_the_model_reads_no_column_of_a_sparse_matrix(monkeypatch):
    """A count likelihood over thousands of sparse columns takes their number:
    building it must not slice the matrix column by column (each slice reads
    every stored entry)."""
    import skvae._tables

    read = []
    column = skvae._tables._column

    def counted(X, j):
        read.append(j)
        return column(X, j)

    monkeypatch.setattr(skvae._tables, "_column", counted)
    VAETransformer(**{**PARAMS, "max_iter": 1}).fit(sp.csr_matrix(X))
    assert read == []


@pytest.mark.parametrize("chunk", [None, 4], ids=["whole", "in-chunks"])
def test_the_last_stored_value_is_read_too(monkeypatch, chunk):
    """The stored values are read a chunk at a time (their copies stay small):
    a NaN, an infinity or a fraction in the last one is found."""
    if chunk:
        monkeypatch.setattr("skvae._tables.STORED_CHUNK", chunk)
    counts = sp.csr_matrix(X)
    assert counts.nnz > 3 * 4
    for value, message in [(np.nan, "NaN entries"), (np.inf, "infinity")]:
        bad = counts.copy()
        bad.data[-1] = value
        with pytest.raises(ValueError, match=message):
            VAETransformer(**PARAMS).fit(bad)
    fraction = counts.copy()
    fraction.data[-1] += 0.5
    vae = VAETransformer(**{**PARAMS, "likelihood": "auto", "max_iter": 1}).fit(fraction)
    assert {c["likelihood"] for c in vae.column_likelihoods_.values()} == {"gaussian"}
    with pytest.raises(ValueError, match="column 29 has negative or fractional"):
        VAETransformer(**{**PARAMS, "likelihood": "negbinom"}).fit(fraction)
