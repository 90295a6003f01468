"""DataFrames beyond pandas (through narwhals): polars tables in, polars out."""

import pickle

import numpy as np
import pandas as pd
import pytest

from skvae import VAEImputer, VAETransformer

pl = pytest.importorskip("polars")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def tables(table):
    """The conftest's mixed pandas table and the same table in polars."""
    frame = pl.from_pandas(table)
    return table, frame


def test_mixed_polars_table_fits_as_its_pandas_twin(tables):
    pandas_table, polars_table = tables
    a = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(pandas_table)
    b = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(polars_table)
    np.testing.assert_array_equal(a.transform(pandas_table), b.transform(polars_table))
    np.testing.assert_array_equal(a.score_samples(pandas_table), b.score_samples(polars_table))
    assert list(b.get_feature_names_out()) == ["vaetransformer0", "vaetransformer1"]


def test_inverse_transform_and_sample_come_back_in_polars(tables):
    pandas_table, polars_table = tables
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(polars_table)
    for out in (vae.inverse_transform(vae.transform(polars_table)),
                vae.sample(20, random_state=0), vae.sample(5, noise=False)):
        assert isinstance(out, pl.DataFrame)
        assert out.columns == polars_table.columns
        assert out.schema == polars_table.schema
    again = pickle.loads(pickle.dumps(vae))
    assert again.sample(3, random_state=0).equals(vae.sample(3, random_state=0))
    # The same model fitted on pandas answers in pandas.
    frame_model = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    assert isinstance(frame_model.fit(pandas_table).sample(3), pd.DataFrame)


def test_polars_output_of_transform(tables):
    _, polars_table = tables
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    codes = vae.set_output(transform="polars").fit_transform(polars_table)
    assert isinstance(codes, pl.DataFrame) and codes.columns == ["vaetransformer0",
                                                                 "vaetransformer1"]


def test_imputer_fills_a_polars_table_in_polars(tables):
    _, polars_table = tables
    holes = polars_table.with_columns(
        pl.when(pl.col("height") > 180).then(None).otherwise(pl.col("height")).alias("height"))
    imputer = VAEImputer(VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0),
                         random_state=0)
    out = imputer.fit_transform(holes)
    assert isinstance(out, pl.DataFrame) and out.schema == polars_table.schema
    assert out["height"].null_count() == 0


def polars_with_nulls():
    rng = np.random.default_rng(0)
    counts = rng.poisson(3, 60).tolist()
    counts[0] = None
    flags = (rng.random(60) > 0.5).tolist()
    flags[1] = None
    return pl.DataFrame({"n": counts, "x": rng.normal(size=60), "flag": flags}).with_columns(
        pl.Series("small", rng.poisson(2, 59).tolist() + [None], dtype=pl.UInt8))


def test_integer_and_boolean_columns_with_nulls_are_read_as_in_pandas():
    frame = polars_with_nulls()
    twin = frame.to_pandas().astype({"n": "Int64", "flag": "boolean", "small": "UInt8"})
    a = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(frame)
    b = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(twin)
    assert [s.likelihood for s in a._specs] == [s.likelihood for s in b._specs] == [
        "discrete", "gaussian", "bernoulli", "discrete"]
    np.testing.assert_array_equal(a.transform(frame), b.transform(twin))
    assert a.sample(5, random_state=0).schema == frame.schema


def test_imputer_output_follows_set_output_with_the_columns_dtypes():
    frame = polars_with_nulls()
    imputer = VAEImputer(VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0),
                         random_state=0)
    filled = imputer.fit_transform(frame)
    assert isinstance(filled, pl.DataFrame) and filled.schema == frame.schema
    as_pandas = imputer.set_output(transform="pandas").transform(frame)
    assert isinstance(as_pandas, pd.DataFrame)
    assert as_pandas.dtypes.astype(str).tolist() == ["Int64", "float64", "boolean", "UInt8"]
    np.testing.assert_array_equal(as_pandas["n"].to_numpy(), filled["n"].to_numpy())


def test_enum_columns_come_back_as_enums():
    rng = np.random.default_rng(0)
    sizes = pl.Enum(["small", "medium", "large"])
    frame = pl.DataFrame({
        "x": rng.normal(size=60),
        "size": pl.Series(rng.choice(["small", "large", "medium"], 60), dtype=sizes),
        "colour": pl.Series(rng.choice(["red", "blue"], 60), dtype=pl.Categorical),
    })
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(frame)
    for out in (vae.inverse_transform(vae.transform(frame)), vae.sample(5, random_state=0),
                pickle.loads(pickle.dumps(vae)).sample(5, random_state=0)):
        assert out.schema == frame.schema  # size stays an Enum, colour a Categorical
    holes = frame.with_columns(
        pl.when(pl.col("x") > 1).then(None).otherwise(pl.col("size")).alias("size"))
    imputer = VAEImputer(VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0),
                         random_state=0)
    filled = imputer.fit_transform(holes)
    assert filled.schema == frame.schema and filled["size"].null_count() == 0
