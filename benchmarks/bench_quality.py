"""Quality benchmark: VAETransformer against PCA and FactorAnalysis.

On digits (pixels scaled to [0, 1]) and breast_cancer (standardised), with a
stratified 75/25 split, for ``n_components`` in {2, 5, 10}, prints for each method

* the held-out log-likelihood per row (``score`` on the test rows: PCA's and
  FactorAnalysis's exact Gaussian log-likelihood, VAETransformer's
  importance-weighted lower bound with ``n_score_samples`` samples), and
* the accuracy of a LogisticRegression trained on each method's codes.

VAETransformer runs with its default settings apart from ``n_components`` and
``random_state``. Run::

    python benchmarks/bench_quality.py            # the full table
    python benchmarks/bench_quality.py --seeds 0 1 2   # VAE figures averaged over seeds
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer


def datasets():
    X, y = load_digits(return_X_y=True)
    yield "digits", X / 16.0, y
    X, y = load_breast_cancer(return_X_y=True)
    yield "breast_cancer", X, y


def measure(model, X_train, X_test, y_train, y_test):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train)
    seconds = time.perf_counter() - start
    classifier = LogisticRegression(max_iter=5000)
    classifier.fit(model.transform(X_train), y_train)
    accuracy = classifier.score(model.transform(X_test), y_test)
    return model.score(X_test), accuracy, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n-components", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--params", default="{}", help="extra VAETransformer params (a dict)")
    args = parser.parse_args(argv)
    extra = eval(args.params)  # noqa: S307 - a benchmark's own command line

    header = (
        f"{'data':<14}{'k':>3}  {'PCA ll':>9}{'FA ll':>9}{'VAE ll':>9}   "
        f"{'PCA acc':>8}{'FA acc':>8}{'VAE acc':>8}   {'VAE s':>6}  targets"
    )
    print(header)
    print("-" * len(header))
    for name, X, y in datasets():
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, stratify=y, random_state=0
        )
        if name == "breast_cancer":
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        for k in args.n_components:
            pca = measure(PCA(k), X_train, X_test, y_train, y_test)
            fa = measure(FactorAnalysis(k, random_state=0), X_train, X_test, y_train, y_test)
            runs = [
                measure(
                    VAETransformer(k, random_state=seed, **extra),
                    X_train, X_test, y_train, y_test,
                )
                for seed in args.seeds
            ]
            vae = np.mean(runs, axis=0)
            met = f"ll>FA {'yes' if vae[0] > fa[0] else 'NO'}, acc>PCA {'yes' if vae[1] > pca[1] else 'NO'}"
            print(
                f"{name:<14}{k:>3}  {pca[0]:>9.2f}{fa[0]:>9.2f}{vae[0]:>9.2f}   "
                f"{pca[1]:>8.3f}{fa[1]:>8.3f}{vae[1]:>8.3f}   {vae[2]:>6.1f}  {met}",
                flush=True,
            )


if __name__ == "__main__":
    main()
