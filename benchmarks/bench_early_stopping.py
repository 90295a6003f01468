"""Early stopping against training on every row, at several table sizes.

A curved 3-D latent structure in 20 dimensions (``tanh`` of a random linear
map, plus noise of standard deviation 0.1), standardised on the training rows;
1,000 held-out rows. For each size, ``VAETransformer(n_components=3)`` is
fitted with and without ``early_stopping`` over several seeds (the seed picks
the training rows as well as the model's randomness), and the script prints the
mean held-out bound per row of each, with FactorAnalysis's for reference.
Early stopping should be within noise of training on every row at every size.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_early_stopping.py
    OMP_NUM_THREADS=1 python benchmarks/bench_early_stopping.py --sizes 100 300 --seeds 0 1 2 3 4
"""

import argparse
import warnings

import numpy as np
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer


def make_data(n_rows, seed=0):
    rng = np.random.RandomState(seed)
    Z = rng.normal(size=(n_rows, 3))
    W = np.random.RandomState(0).normal(size=(3, 20))
    return np.tanh(Z @ W / 2) + 0.1 * rng.normal(size=(n_rows, 20))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 500, 2000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    X_test = make_data(1000, seed=10_000)
    print(f"{'rows':>6} {'no early stopping':>18} {'early stopping':>15} {'difference':>11} "
          f"{'FactorAnalysis':>15}")
    for n_rows in args.sizes:
        scores = {False: [], True: []}
        fa_scores = []
        for seed in args.seeds:
            X_train = make_data(n_rows, seed=seed + 1)
            scaler = StandardScaler().fit(X_train)
            train, test = scaler.transform(X_train), scaler.transform(X_test)
            for early in (False, True):
                vae = VAETransformer(n_components=3, early_stopping=early, random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    vae.fit(train)
                scores[early].append(vae.score(test))
            fa_scores.append(FactorAnalysis(3).fit(train).score(test))
        off, on = np.mean(scores[False]), np.mean(scores[True])
        print(f"{n_rows:>6} {off:>18.2f} {on:>15.2f} {on - off:>+11.2f} {np.mean(fa_scores):>15.2f}",
              flush=True)


if __name__ == "__main__":
    main()
