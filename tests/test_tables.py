"""Tables and DataFrames (skvae._tables): mixed columns, counts, categories, booleans."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

from skvae._likelihoods import Categorical
from skvae._tables import build_observation, column_specs, decode, encode

KNOWN = {"gaussian", "bernoulli", "categorical", "poisson", "negbinom", "discrete"}


def test_auto_rule_by_dtype(table):
    specs = column_specs(table, "auto", KNOWN)
    assert [s.likelihood for s in specs] == [
        "gaussian", "categorical", "categorical", "discrete", "bernoulli",
    ]
    observation = build_observation(table, specs, {})
    categorical = observation.likelihoods[1]
    assert isinstance(categorical, Categorical) and observation.columns[1] == [1, 2]
    assert categorical.categories[0] == ("a", "b", "c")  # only categories seen in the data
    # Whole numbers: discrete over a range of at most 100 values (floats too,
    # as an integer column with missing values is read), else as other
    # numbers: log-normal when not negative and skewed, else Gaussian.
    skewed = np.r_[np.zeros(5, dtype=int), np.arange(1, 10) ** 4]
    whole = pd.DataFrame({
        "n": np.array([-1, 2, 3]), "amount": np.array([0, 5, 150000]),
        "signed": np.array([-500, 0, 500]), "years": [12.0, np.nan, 16.0],
        "wide": [0.0, 99.0, np.nan], "wider": [0.0, 100.0, 3.0], "x": [0.5, 1.0, 2.0],
        "edge": np.array([1, 100, 50]),
    })
    assert [s.likelihood for s in column_specs(whole, "auto", KNOWN)] == [
        "discrete", "gaussian", "gaussian", "discrete", "discrete", "gaussian", "gaussian",
        "discrete",
    ]
    assert column_specs(pd.DataFrame({"price": skewed}), "auto", KNOWN)[0].likelihood == (
        "lognormal")
    assert column_specs(np.zeros((3, 2)), "auto", KNOWN)[1].likelihood == "gaussian"


def test_mixed_table_round_trips_as_a_dataframe(make_vae, table):
    vae = make_vae(hidden_layer_sizes=(32,), n_components=3, max_iter=40).fit(table)
    Z = vae.transform(table)
    assert Z.shape == (400, 3) and np.isfinite(Z).all()
    for out in (vae.inverse_transform(Z), vae.sample(300, random_state=0)):
        assert isinstance(out, pd.DataFrame)
        assert list(out.columns) == list(table.columns)
        assert (out.dtypes == table.dtypes).all()
        assert list(out["group"].cat.categories) == ["a", "b", "c", "never"]
        assert set(out["group"]) <= {"a", "b", "c"}
        assert set(out["city"]) <= {"x", "y"}
        assert out["visits"].min() >= 0
    drawn = vae.sample(2000, random_state=1)
    freq = drawn["group"].value_counts(normalize=True)
    assert freq["a"] == pytest.approx(0.6, abs=0.1)
    assert drawn["height"].mean() == pytest.approx(table["height"].mean(), rel=0.02)
    assert drawn["member"].mean() == pytest.approx(table["member"].mean(), abs=0.1)


def test_reconstruction_recovers_categories(make_vae, table):
    vae = make_vae(hidden_layer_sizes=(32,), n_components=3, max_iter=100, batch_size=32,
                   learning_rate_init=3e-3)
    back = vae.fit(table).inverse_transform(vae.transform(table))
    assert (back["group"] == table["group"]).mean() > 0.85  # the majority class has 0.6
    # "city" is a fair coin independent of everything else: encoding its bit
    # costs as much KL (ln 2) as it saves in reconstruction, so the ELBO has no
    # reason to keep it, and whether a fit does depends on the seed. Not asserted.


def test_integer_columns_modelled_as_gaussian_come_back_as_integers(make_vae):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"amount": rng.randint(-50000, 50000, size=200),
                          "x": rng.normal(size=200)})
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=40, learning_rate_init=3e-3).fit(frame)
    assert vae._specs[0].likelihood == "gaussian"
    drawn = vae.sample(500, random_state=0)
    assert drawn["amount"].dtype == np.int64
    assert abs(drawn["amount"].mean() - frame["amount"].mean()) < 0.25 * frame["amount"].std()


def test_score_sums_column_log_likelihoods(make_vae, table):
    # Trained until the counts' dispersion is learned: after 30 epochs it is
    # still near its start, the count tail heavy, and the margin seed-dependent.
    vae = make_vae(hidden_layer_sizes=(32,), n_components=2, max_iter=100).fit(table)
    base = vae.score_samples(table.iloc[:50])
    odd = table.iloc[:50].copy()
    odd["visits"] = odd["visits"] + 40  # far out in the count tail
    assert np.all(vae.score_samples(odd) < base - 10)


def test_unseen_category_is_a_clear_error(make_vae, table):
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=2, handle_unknown="error").fit(table)
    bad = table.iloc[:5].copy()
    bad["city"] = ["x", "y", "z", "x", "x"]
    with pytest.raises(ValueError, match=r"Column 'city' has categories not seen in fit: \['z'\]"):
        vae.transform(bad)


def test_likelihood_per_column_by_dict_and_list(make_vae, table):
    likelihood = {"visits": "poisson", "height": "gaussian"}
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=2, likelihood=likelihood).fit(table)
    assert [s.likelihood for s in vae._specs][3] == "poisson"
    X = np.column_stack([np.random.RandomState(0).normal(size=50), np.arange(50) % 3, np.arange(50) % 2])
    likelihood = ["gaussian", "categorical", "bernoulli"]
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=2, likelihood=likelihood).fit(X)
    back = vae.inverse_transform(vae.transform(X))
    assert set(np.unique(back[:, 1])) <= {0.0, 1.0, 2.0}
    assert set(np.unique(vae.sample(20, random_state=0)[:, 2])) <= {0.0, 1.0}


def test_pipeline_after_column_transformer(make_vae, table):
    columns = ColumnTransformer(
        [
            ("num", StandardScaler(), ["height"]),
            ("cat", OrdinalEncoder(), ["group", "city"]),
            ("pass", "passthrough", ["visits", "member"]),
        ]
    )
    vae = make_vae(
        hidden_layer_sizes=(32,),
        likelihood=["gaussian", "categorical", "categorical", "poisson", "bernoulli"],
        n_components=3, max_iter=60, batch_size=32, learning_rate_init=3e-3,
    )
    pipe = make_pipeline(columns, vae, LogisticRegression())
    target = (table["group"] == "a").to_numpy()
    pipe.fit(table, target)
    assert pipe.score(table, target) > 0.75


@pytest.mark.parametrize(
    "frame, params, message",
    [
        (pd.DataFrame({"t": pd.date_range("2020", periods=5)}), {}, "'t' has dtype datetime64.*fits no likelihood"),
        (pd.DataFrame({"n": [1.0, -2.0, 3.0]}), {"likelihood": "poisson"}, "'n' has negative or fractional"),
        (pd.DataFrame({"n": [1.0, 2.5, 3.0]}), {"likelihood": "negbinom"}, "'n' has negative or fractional"),
        (pd.DataFrame({"n": [1.0, 2.0]}), {"likelihood": {"m": "poisson"}}, r"not in X: \['m'\]"),
        (pd.DataFrame({"n": [1.0, 2.0]}), {"likelihood": ["poisson", "gaussian"]}, "lists 2 likelihoods"),
        (pd.DataFrame({"n": [1.0, 2.0]}), {"likelihood": {"n": "zipf"}}, "Unknown likelihood"),
        (pd.DataFrame({"v": [1.0, np.inf]}), {}, "'v' contains infinity"),
        (pd.DataFrame({"c": [None, None, None], "v": [1.0, 2.0, 3.0]}), {},
         "no values to learn categories from"),
        (pd.DataFrame({"v": ["1.0", "x"]}), {"likelihood": "gaussian"}, "'v' holds values that are not numbers"),
    ],
)
def test_bad_tables_are_named(make_vae, frame, params, message):
    with pytest.raises(ValueError, match=message):
        make_vae(hidden_layer_sizes=(32,), max_iter=1, **params).fit(frame)


def test_counts_array_rejects_fractions(make_vae):
    with pytest.raises(ValueError, match="negative or fractional values"):
        make_vae(hidden_layer_sizes=(32,), max_iter=20, likelihood="poisson").fit(
            np.array([[0.5, 1.0], [2.0, 3.0]])
        )


def test_encode_decode_round_trip(table):
    specs = column_specs(table, "auto", KNOWN)
    observation = build_observation(table, specs, {})
    back = decode(encode(table, observation, specs), observation, specs, as_frame=True)
    pd.testing.assert_frame_equal(back, table)
    X = np.ones((2, 1))
    specs = column_specs(X, "auto", KNOWN)
    assert decode(X, build_observation(X, specs, {}), specs, as_frame=False) is X


def test_nullable_boolean_column_comes_back_as_booleans(make_vae):
    frame = pd.DataFrame({"flag": pd.array([True, False] * 20, dtype="boolean"),
                          "x": np.linspace(0, 1, 40)})
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=2).fit(frame)
    out = vae.inverse_transform(vae.transform(frame))
    assert out["flag"].dtype == "boolean"
    assert set(out["flag"]) <= {True, False}


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.uint16, "Int8"])
def test_decoded_integers_are_clipped_to_the_dtype_not_wrapped(dtype):
    info = np.iinfo(pd.array([0], dtype=dtype).dtype.numpy_dtype
                    if isinstance(dtype, str) else dtype)
    values = np.array([info.min, info.max] * 10)
    frame = pd.DataFrame({"n": pd.array(values, dtype=dtype)})
    specs = column_specs(frame, "gaussian", KNOWN)
    observation = build_observation(frame, specs, {})
    far = np.array([[-1e6], [1e6], [np.float64(info.max) + 0.4]])  # beyond the range
    decoded = decode(far, observation, specs, as_frame=True)
    assert decoded["n"].dtype == frame["n"].dtype
    assert decoded["n"].tolist() == [info.min, info.max, info.max]


def test_estimator_outputs_stay_within_an_int8_columns_range():
    from skvae import VAETransformer

    frame = pd.DataFrame({"t": np.array([-120, -100, 100, 120] * 10, dtype=np.int8)})
    # Gaussian, as the automatic rule would read it with more distinct values.
    vae = VAETransformer(n_components=1, max_iter=3, random_state=0,
                         likelihood="gaussian").fit(frame)
    mean = vae.inverse_transform(np.array([[0.0], [30.0], [-30.0]]))["t"]
    module = vae.module_.eval()
    with torch.no_grad():
        far = module.observation.mean(module.decode(
            torch.tensor([[0.0], [30.0], [-30.0]]))).numpy()[:, 0]
    # Each decoded mean is the model's mean rounded, or the range's end past it.
    assert mean.tolist() == np.clip(np.rint(far), -128, 127).astype(int).tolist()
    drawn = vae.sample(500, random_state=0)["t"]
    assert drawn.dtype == np.int8 and drawn.between(-128, 127).all()


def test_count_columns_of_arrays_come_back_rounded():
    from skvae import VAETransformer

    X = np.random.RandomState(0).poisson(3, size=(60, 2)).astype(np.float32)
    vae = VAETransformer(likelihood=["poisson", "gaussian"], max_iter=3,
                         random_state=0).fit(X)
    codes = np.random.RandomState(1).normal(size=(20, 2)).astype(np.float32)
    out = vae.inverse_transform(codes)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], np.maximum(np.rint(out[:, 0]), 0))
    assert not np.array_equal(out[:, 1], np.rint(out[:, 1]))  # Gaussian: not rounded


def test_an_all_missing_nullable_integer_column_gets_the_clear_error():
    from skvae import VAETransformer

    frame = pd.DataFrame({"a": np.arange(20.0), "i": pd.array([None] * 20, dtype="Int64")})
    with pytest.raises(ValueError, match=r"Columns \['i'\] have no observed values"):
        VAETransformer(max_iter=2).fit(frame)


def heaped_schooling(n_rows=600, seed=0):
    """Years of schooling: 0 to 18, heaped at 12 (38%) and 16, tied to income."""
    rng = np.random.RandomState(seed)
    years = rng.choice([8, 10, 11, 12, 13, 14, 16, 18], size=n_rows,
                       p=[0.05, 0.07, 0.05, 0.38, 0.08, 0.12, 0.18, 0.07])
    years[rng.uniform(size=n_rows) < 0.01] = 0
    income = np.exp(0.1 * years + rng.normal(0, 0.3, size=n_rows))
    return pd.DataFrame({"years": years, "income": income})


def test_heaped_integers_come_back_heaped_and_in_range(make_vae):
    frame = heaped_schooling()
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=150).fit(frame)
    assert vae._specs[0].likelihood == "discrete"
    drawn = vae.sample(3000, random_state=0)["years"]
    assert drawn.between(0, 18).all() and drawn.dtype == frame["years"].dtype
    share = drawn.value_counts(normalize=True)
    assert share[12] == pytest.approx(0.38, abs=0.05)
    assert share.get(9, 0) < 0.01 and share.get(15, 0) < 0.01  # never seen: not filled in
    # The counts' likelihood, fitted on the same rows, smooths the heap away.
    counts = make_vae(hidden_layer_sizes=(32,), max_iter=150,
                      likelihood={"years": "negbinom"}).fit(frame)
    smooth = counts.sample(3000, random_state=0)["years"].value_counts(normalize=True)
    assert smooth[12] < 0.25


def test_values_beyond_the_training_range_score_lower_the_farther_out(make_vae):
    frame = heaped_schooling()
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=30).fit(frame)
    rows = frame.iloc[:20].copy()
    scores = []
    for years in (18, 19, 22, 30):
        rows["years"] = years
        scores.append(vae.score_samples(rows))
    assert np.isfinite(scores).all()
    assert (scores[1] < scores[0]).all() and (scores[2] < scores[1]).all()
    # Past the first value out, each step costs log(rho) = -10 / 19 nats
    # (the range 0..18 holds 19 values).
    np.testing.assert_allclose(scores[3] - scores[2], 8 * -10 / 19, rtol=1e-4)


def test_skewed_positive_columns_are_log_normal_and_keep_their_shape(make_vae):
    rng = np.random.RandomState(0)
    z = rng.normal(size=800)
    frame = pd.DataFrame({"price": np.exp(1.5 * z + rng.normal(0, 0.5, size=800)) * 100,
                          "x": z + 0.1 * rng.normal(size=800),
                          "symmetric": rng.uniform(1, 2, size=800)})
    specs = column_specs(frame, "auto", KNOWN | {"lognormal"})
    assert [s.likelihood for s in specs] == ["lognormal", "gaussian", "gaussian"]

    def tail_error(likelihood):
        vae = make_vae(hidden_layer_sizes=(32,), max_iter=60,
                       likelihood={"price": likelihood}).fit(frame)
        drawn = vae.sample(4000, random_state=0)["price"]
        assert drawn.min() >= frame["price"].min() and drawn.max() <= frame["price"].max()
        levels = [0.05, 0.25, 0.5, 0.75, 0.95]
        return np.abs(np.log(np.quantile(drawn, levels) / np.quantile(frame["price"], levels)))

    # The log-normal's draws follow the skewed column's quantiles; a Gaussian's,
    # kept in the range, pile mass near the bottom and spread the middle.
    assert tail_error("lognormal").max() < 0.35
    assert tail_error("lognormal").mean() < tail_error("gaussian").mean()


def test_discrete_and_log_normal_columns_take_missing_values(make_vae):
    frame = heaped_schooling(300)
    holes = np.random.RandomState(1).uniform(size=frame.shape) < 0.2
    incomplete = frame.astype({"years": "Int64"}).mask(holes)
    vae = make_vae(max_iter=5, likelihood={"income": "lognormal"}).fit(incomplete)
    assert [c["likelihood"] for c in vae.column_likelihoods_.values()] == [
        "discrete", "lognormal"]
    assert np.isfinite(vae.transform(incomplete)).all()
    assert np.isfinite(vae.score_samples(incomplete)).all()
    from skvae import VAEImputer

    filled = VAEImputer(make_vae(max_iter=5, likelihood={"income": "lognormal"}))
    filled = filled.fit_transform(incomplete)
    assert filled.notna().all().all()
    assert filled["years"].between(0, 18).all() and (filled["income"] > 0).all()


def test_a_few_coded_levels_are_categorical_under_auto():
    rng = np.random.RandomState(0)
    levels = np.log1p([0, 10, 25, 50, 95])
    frame = pd.DataFrame({"coins": rng.choice(levels, 200), "few_rows": rng.choice(levels, 200)})
    frame.loc[30:, "few_rows"] = rng.normal(size=170)
    assert [s.likelihood for s in column_specs(frame, "auto", KNOWN)] == [
        "categorical", "gaussian"]
    # Too few rows for their number of levels: not read as levels (but as a
    # non-negative column with many zeros: log-normal with its point mass).
    assert column_specs(frame.iloc[:40], "auto", KNOWN | {"lognormal"})[0].likelihood == (
        "lognormal")


def test_zero_heavy_columns_keep_their_zeros(make_vae):
    rng = np.random.RandomState(0)
    z = rng.normal(size=600)
    gain = np.where(z + rng.normal(0, 0.5, 600) > 1.0, np.exp(8 + rng.normal(size=600)), 0.0)
    frame = pd.DataFrame({"gain": gain, "x": z})
    vae = make_vae(hidden_layer_sizes=(32,), max_iter=100).fit(frame)
    assert vae.column_likelihoods_["gain"]["likelihood"] == "lognormal"
    drawn = vae.sample(3000, random_state=0)
    assert (drawn["gain"] == 0).mean() == pytest.approx((gain == 0).mean(), abs=0.05)
    # Zeros go with low x, as in the data.
    assert drawn.loc[drawn["gain"] > 0, "x"].mean() > drawn.loc[drawn["gain"] == 0, "x"].mean()


def test_the_chosen_likelihoods_show_in_the_html_representation(make_vae):
    frame = heaped_schooling(100)
    vae = make_vae(max_iter=2).fit(frame)
    html = vae._repr_html_()
    assert "column_likelihoods_" in html and "discrete" in html
