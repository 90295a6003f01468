"""Thread safety, counted: concurrent calls against the same calls made serially.

Runs, on a small count table (negative-binomial likelihood, whose sampler draws
gamma variates):

* ``--fits`` fits (one epoch each, seeds 0, 1, 2, ...) in a pool of ``--threads``
  threads, while another thread keeps drawing from torch's global generator,
  and counts the fitted models whose codes differ from the serial fit's;
* ``--samples`` calls of ``sample(50, random_state=k)`` on one fitted model from
  the pool, and counts the draws that differ from the serial ones;
* whether torch's global random state is the same after the fits as before
  (with nothing else drawing from it).

Run::

    python benchmarks/bench_threads.py                 # 200 fits, 1,600 samples
    python benchmarks/bench_threads.py --fits 50 --samples 400
"""

import argparse
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from skvae import VAETransformer


def table():
    rng = np.random.RandomState(0)
    rate = np.exp(rng.normal(size=(200, 1)) @ rng.normal(size=(1, 6)) * 0.5 + 1)
    return rng.poisson(rate).astype(float)


def fit(seed, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(hidden_layer_sizes=(16,), max_iter=1, likelihood="negbinom",
                              random_state=seed).fit(X)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fits", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1600)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    X = table()

    start = time.perf_counter()
    serial = [fit(seed, X).transform(X) for seed in range(args.fits)]
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            torch.rand(16)

    other = threading.Thread(target=busy)
    other.start()
    try:
        with ThreadPoolExecutor(args.threads) as pool:
            threaded = list(pool.map(lambda seed: fit(seed, X).transform(X), range(args.fits)))
    finally:
        stop.set()
        other.join(timeout=60)
    differ = sum(not np.array_equal(a, b) for a, b in zip(serial, threaded))
    print(f"fits: {differ} of {args.fits} threaded fits differ from the serial ones "
          f"({args.threads} threads, another thread drawing from torch's generator)")

    model = fit(0, X)
    serial = [model.sample(50, random_state=k) for k in range(args.samples)]
    with ThreadPoolExecutor(args.threads) as pool:
        threaded = list(pool.map(lambda k: model.sample(50, random_state=k),
                                 range(args.samples)))
    differ = sum(not np.array_equal(a, b) for a, b in zip(serial, threaded))
    print(f"sample: {differ} of {args.samples} threaded negative-binomial draws differ "
          "from the serial ones")

    state = torch.get_rng_state()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(lambda seed: fit(seed, X), range(16)))
    print("torch's global random state after 16 threaded fits: "
          + ("unchanged" if torch.equal(state, torch.get_rng_state()) else "CHANGED"))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
