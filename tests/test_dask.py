"""Inference on Dask (skvae.dask), on a two-worker LocalCluster on loopback."""

import numpy as np
import pytest

from skvae import VAETransformer

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
skvae_dask = pytest.importorskip("skvae.dask")

TIMEOUT = 60  # seconds for any one computation on the cluster


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, worker_class=distributed.Nanny, timeout=TIMEOUT,
    )
    client = distributed.Client(cluster, timeout=TIMEOUT)
    yield client
    client.close(timeout=TIMEOUT)
    cluster.close(timeout=TIMEOUT)


def compute(client, collection):
    return client.compute(collection).result(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def fitted():
    X = np.random.RandomState(0).normal(size=(300, 6)).astype(np.float32)
    return VAETransformer(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X), X


@pytest.mark.slow
def test_array_methods_match_in_memory_ones_on_a_cluster(client, fitted):
    vae, X = fitted
    lazy = da.from_array(X, chunks=(70, 4))  # uneven row blocks, split columns
    Z = skvae_dask.transform(vae, lazy)
    assert Z.shape == (300, 2) and Z.dtype == np.float32 and Z.chunks[0] == lazy.chunks[0]
    np.testing.assert_array_equal(compute(client, Z), vae.transform(X))
    scores = skvae_dask.score_samples(vae, lazy.astype(np.float64))
    assert scores.shape == (300,) and scores.dtype == np.float64
    np.testing.assert_allclose(compute(client, scores), vae.score_samples(X.astype(np.float64)))
    back = skvae_dask.inverse_transform(vae, Z)
    assert back.shape == (300, 6)
    np.testing.assert_allclose(compute(client, back), vae.inverse_transform(vae.transform(X)))


@pytest.mark.slow
def test_sample_is_lazy_and_reproducible(client, fitted):
    vae, _ = fitted
    drawn = skvae_dask.sample(vae, 250, chunks=100, random_state=0)
    assert drawn.shape == (250, 6) and drawn.chunks[0] == (100, 100, 50)
    first = compute(client, drawn)
    again = skvae_dask.sample(vae, 250, chunks=100, random_state=0).compute(scheduler="sync")
    np.testing.assert_array_equal(first, again)
    other = skvae_dask.sample(vae, 250, chunks=100, random_state=1).compute(scheduler="sync")
    assert not np.array_equal(first, other)
    # The decoder's means at the same codes, block by block.
    means = skvae_dask.sample(vae, 250, chunks=100, random_state=0, noise=False)
    seeds = np.random.RandomState(0).randint(2**31 - 1, size=3)
    expected = np.vstack([vae.sample(size, random_state=int(seed), noise=False)
                          for size, seed in zip((100, 100, 50), seeds)])
    np.testing.assert_array_equal(means.compute(scheduler="sync"), expected)


@pytest.mark.slow
def test_dataframes_keep_their_columns_and_dtypes(client):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.normal(size=120), "n": rng.poisson(3, 120),
                          "kind": pd.Categorical(rng.choice(["a", "b"], 120))})
    vae = VAETransformer(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(frame)
    lazy = dd.from_pandas(frame, npartitions=3)
    Z = compute(client, skvae_dask.transform(vae, lazy))
    assert list(Z.columns) == list(vae.get_feature_names_out())
    np.testing.assert_allclose(Z.to_numpy(), vae.transform(frame))
    scores = compute(client, skvae_dask.score_samples(vae, lazy))
    np.testing.assert_allclose(scores.to_numpy(), vae.score_samples(frame))
    decoded = compute(client, skvae_dask.inverse_transform(vae, da.from_array(Z.to_numpy(), 50)))
    assert (decoded.dtypes == frame.dtypes).all() and len(decoded) == 120
    lazy_draws = skvae_dask.sample(vae, 40, chunks=15, random_state=0)
    assert lazy_draws.known_divisions
    drawn = compute(client, lazy_draws)
    assert list(drawn.columns) == ["x", "n", "kind"] and len(drawn) == 40
    assert drawn.index.tolist() == list(range(40))  # numbered as one sample would be


@pytest.mark.slow
def test_grid_search_on_the_cluster_through_joblib(client, fitted):
    import joblib
    from sklearn.model_selection import GridSearchCV

    _, X = fitted
    search = GridSearchCV(VAETransformer(hidden_layer_sizes=(16,), max_iter=5, random_state=0),
                          {"n_components": [1, 2]}, cv=2)
    with joblib.parallel_backend("dask"):
        search.fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_bad_input_is_named(fitted):
    vae, X = fitted
    with pytest.raises(TypeError, match="expected a dask array or dask DataFrame"):
        skvae_dask.transform(vae, X)
    with pytest.raises(ValueError, match="n_components=2"):
        skvae_dask.inverse_transform(vae, da.zeros((4, 3)))
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        skvae_dask.sample(vae, 0)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        skvae_dask.transform(VAETransformer(), da.from_array(X))


@pytest.fixture(scope="module")
def threads():
    """A one-worker LocalCluster in this process: quick to start, for the
    cases that need no pickling to other processes."""
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
        timeout=TIMEOUT,
    )
    client = distributed.Client(cluster, timeout=TIMEOUT)
    yield client
    client.close(timeout=TIMEOUT)
    cluster.close(timeout=TIMEOUT)


def test_model_fitted_on_polars_gives_pandas_partitions(threads):
    pl = pytest.importorskip("polars")
    rng = np.random.RandomState(0)
    kind = pl.Series(rng.choice(["a", "b"], 40)).cast(pl.Enum(["a", "b"]))
    frame = pl.DataFrame({"x": rng.normal(size=40), "n": rng.poisson(3, 40),
                          "kind": kind})
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(frame)
    Z = vae.transform(frame)
    decoded = skvae_dask.inverse_transform(vae, da.from_array(Z, chunks=15))
    expected = vae.inverse_transform(Z).to_pandas()  # Enum read as a categorical
    assert (decoded.dtypes == expected.dtypes).all()
    got = compute(threads, decoded)
    assert (got.dtypes == expected.dtypes).all()
    np.testing.assert_array_equal(got["n"], expected["n"])
    np.testing.assert_array_equal(got["kind"].astype(str), expected["kind"].astype(str))
    drawn = skvae_dask.sample(vae, 10, chunks=4, random_state=0)
    assert list(drawn.columns) == ["x", "n", "kind"]
    assert len(compute(threads, drawn)) == 10
    assert isinstance(vae.sample(2), pl.DataFrame)  # the model itself is unchanged


@pytest.fixture(scope="module")
def fitted_on_frame():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.normal(size=40), "n": rng.poisson(3, 40),
                          "kind": pd.Categorical(rng.choice(["a", "b"], 40))},
                         index=np.arange(40) * 10)
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(frame)
    return vae, frame


def test_inverse_transform_of_empty_blocks(threads, fitted_on_frame, fitted):
    """Blocks left empty by a filter decode to no rows, not to sklearn's
    'Found array with 0 sample(s)'."""
    for vae in (fitted_on_frame[0], fitted[0]):
        Z = da.from_array(np.random.RandomState(0).normal(size=(30, 2)), chunks=10)
        some = Z[Z[:, 0] > 0.5]  # unknown row counts, some blocks may be empty
        decoded = compute(threads, skvae_dask.inverse_transform(vae, some))
        expected = vae.inverse_transform(some.compute())
        assert len(decoded) == len(expected)
        counts = np.asarray(decoded)[:, 1]  # the integer column, rounded alike
        np.testing.assert_array_equal(counts, np.asarray(expected)[:, 1])
        none = compute(threads, skvae_dask.inverse_transform(vae, Z[Z[:, 0] > 100]))
        assert none.shape == (0, vae.n_features_in_)


def test_inverse_transform_of_a_dataframe_is_lazy(threads, fitted_on_frame):
    """Decoding a dask DataFrame of codes computes nothing until asked, and
    keeps its index, so that the rows line up with the ones encoded."""
    import dask

    dd = pytest.importorskip("dask.dataframe")
    vae, frame = fitted_on_frame
    Z = skvae_dask.transform(vae, dd.from_pandas(frame, npartitions=3))

    def refuse(*args, **kwargs):
        raise AssertionError("computed while building the graph")

    with dask.config.set(scheduler=refuse):
        decoded = skvae_dask.inverse_transform(vae, Z)
    assert (decoded.dtypes == frame.dtypes).all() and decoded.divisions == Z.divisions
    got = compute(threads, decoded)
    expected = vae.inverse_transform(vae.transform(frame))
    assert got.index.equals(frame.index)
    np.testing.assert_array_equal(got["n"], expected["n"])


def test_sample_keeps_object_columns(threads):
    """Dask's conversion of object columns to strings (its default) does not
    change the dtypes that fit saw, as it would for a frame read into dask."""
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    colour = pd.Series(rng.choice(["red", "blue"], 40), dtype=object)
    frame = pd.DataFrame({"x": rng.normal(size=40), "colour": colour})
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(frame)
    drawn = skvae_dask.sample(vae, 10, chunks=4, random_state=0)
    assert (drawn.dtypes == frame.dtypes).all()
    got = compute(threads, drawn)
    assert (got.dtypes == frame.dtypes).all() and set(got["colour"]) <= {"red", "blue"}


def test_bad_input_is_named_before_computing(fitted, fitted_on_frame):
    """Wrong columns and arguments fail when the graph is built, not later on
    a worker."""
    dd = pytest.importorskip("dask.dataframe")
    vae, X = fitted
    lazy = da.from_array(X, chunks=100)
    for method in (skvae_dask.transform, skvae_dask.score_samples):
        with pytest.raises(ValueError, match="X has 5 features, but .* expecting 6"):
            method(vae, lazy[:, :5])
    with pytest.raises(ValueError, match="n_importance_samples must be a positive"):
        skvae_dask.score_samples(vae, lazy, n_importance_samples=0)
    with pytest.raises(ValueError, match="chunks must be a positive integer"):
        skvae_dask.sample(vae, 10, chunks=True)
    vae, frame = fitted_on_frame
    lazy = dd.from_pandas(frame, npartitions=2)
    for columns in (["x", "n"], ["n", "x", "kind"]):
        fitted_on = r"fitted on the columns \['x', 'n', 'kind'\]"
        with pytest.raises(ValueError, match=fitted_on):
            skvae_dask.transform(vae, lazy[columns])


def test_array_of_unknown_shape(threads, fitted):
    """One block of unknown width (as from_delayed gives) needs no rechunking."""
    import dask

    vae, X = fitted
    lazy = da.from_delayed(dask.delayed(X[:20]), shape=(np.nan, np.nan), dtype=X.dtype)
    np.testing.assert_array_equal(compute(threads, skvae_dask.transform(vae, lazy)),
                                  vae.transform(X[:20]))


def test_sparse_blocks_give_the_in_memory_results(threads):
    """A dask array of scipy CSR blocks (as ``map_blocks(sp.csr_matrix)`` or
    AnnData's dask layers give), split by rows and columns."""
    import scipy.sparse as sp

    rng = np.random.RandomState(0)
    counts = rng.poisson(rng.gamma(0.5, 2.0, size=(1, 8)), size=(200, 8)).astype(np.float64)
    vae = VAETransformer(likelihood="negbinom", hidden_layer_sizes=(16,), max_iter=5,
                         random_state=0).fit(sp.csr_matrix(counts))
    lazy = da.from_array(counts, chunks=(70, 5)).map_blocks(sp.csr_matrix)
    assert isinstance(lazy._meta, sp.csr_matrix)
    Z = skvae_dask.transform(vae, lazy)
    # (float64 rows in blocks of 70: the same to rounding of the matrix products)
    np.testing.assert_allclose(compute(threads, Z), vae.transform(counts), rtol=1e-12)
    scores = compute(threads, skvae_dask.score_samples(vae, lazy))
    np.testing.assert_allclose(scores, vae.score_samples(counts))


@pytest.fixture(scope="module")
def with_covariates():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(120, 4)), columns=list("abcd"))
    frame["batch"] = pd.Categorical(rng.choice(["A", "B"], 120))
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                         covariates=["batch"]).fit(frame)
    X = np.c_[frame[list("abcd")].to_numpy(), rng.uniform(0, 2, 120), rng.randint(0, 3, 120)]
    on_array = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                              covariates=[4, 5]).fit(X)
    return vae, frame, on_array, X


def test_covariates_transform_score_and_decode(threads, with_covariates):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    vae, frame, on_array, X = with_covariates
    lazy = dd.from_pandas(frame, npartitions=3)
    Z = skvae_dask.transform(vae, lazy)
    np.testing.assert_allclose(compute(threads, Z).to_numpy(), vae.transform(frame))
    np.testing.assert_allclose(compute(threads, skvae_dask.score_samples(vae, lazy)),
                               vae.score_samples(frame))
    codes = vae.transform(frame)
    # One value for every row, and per-row values aligned with the codes.
    got = compute(threads, skvae_dask.inverse_transform(vae, Z, covariates={"batch": "B"}))
    pd.testing.assert_frame_equal(got, vae.inverse_transform(codes, covariates={"batch": "B"}))
    flipped = frame[["batch"]].assign(batch=frame["batch"].map({"A": "B", "B": "A"}))
    got = compute(threads, skvae_dask.inverse_transform(
        vae, Z, covariates=dd.from_pandas(flipped, npartitions=3)))
    pd.testing.assert_frame_equal(got, vae.inverse_transform(codes, covariates=flipped))
    # An array of codes and a dask array of the covariate columns, rechunked.
    Z_array = da.from_array(codes, chunks=50)
    C = da.from_array(flipped.to_numpy(object), chunks=40)
    got = compute(threads, skvae_dask.inverse_transform(vae, Z_array, covariates=C))
    pd.testing.assert_frame_equal(got, vae.inverse_transform(codes, covariates=flipped))
    # A model fitted on an array: arrays out.
    lazy_X = da.from_array(X, chunks=50)
    Z = skvae_dask.transform(on_array, lazy_X)
    np.testing.assert_allclose(compute(threads, Z), on_array.transform(X))
    C = da.from_array(X[:, 4:][::-1].copy(), chunks=30)
    got = compute(threads, skvae_dask.inverse_transform(on_array, Z, covariates=C))
    np.testing.assert_allclose(got, on_array.inverse_transform(on_array.transform(X),
                                                               covariates=X[:, 4:][::-1]))


def test_covariates_sample(threads, with_covariates):
    vae, frame, on_array, _ = with_covariates
    drawn = skvae_dask.sample(vae, 50, chunks=20, random_state=0, covariates={"batch": "A"})
    got = compute(threads, drawn)
    assert (got["batch"] == "A").all() and len(got) == 50
    # Without values, each block draws them from training, from its seed.
    free = compute(threads, skvae_dask.sample(vae, 300, chunks=100, random_state=0))
    again = skvae_dask.sample(vae, 300, chunks=100, random_state=0).compute(scheduler="sync")
    assert free.equals(again) and set(free["batch"]) == {"A", "B"}
    drawn = compute(threads, skvae_dask.sample(on_array, 10, chunks=4, random_state=0,
                                               covariates={4: 1.5, 5: 2}))
    assert (drawn[:, 4] == 1.5).all() and (drawn[:, 5] == 2).all()


def test_bad_covariates_are_named_before_computing(with_covariates):
    vae, frame, _, _ = with_covariates
    Z = da.zeros((10, 2), chunks=5)
    with pytest.raises(ValueError, match="give their values with covariates="):
        skvae_dask.inverse_transform(vae, Z)
    with pytest.raises(ValueError, match="has several values"):
        skvae_dask.inverse_transform(vae, Z, covariates={"batch": ["A", "B"]})
    with pytest.raises(ValueError, match="not seen in fit"):
        skvae_dask.sample(vae, 10, covariates={"batch": "Z"})
    with pytest.raises(TypeError, match="must be a dict"):
        skvae_dask.sample(vae, 10, covariates=[["A"]])
    with pytest.raises(ValueError, match="has 3 blocks, but Z has 2"):
        skvae_dask.inverse_transform(vae, Z.to_dask_dataframe(),
                                     covariates=da.from_array(np.array([["A"]] * 9), chunks=3))
