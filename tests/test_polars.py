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
