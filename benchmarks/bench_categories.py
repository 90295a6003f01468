"""What a wide categorical column costs per epoch.

A synthetic table of 10,000 rows (6 float columns, a count, two categorical
columns of 4 and 7 categories) is fitted with the default networks, without
and with one more categorical column of ``K`` categories (Zipf-like
frequencies: a few common values and a long tail), and, for the widest, with
the tail grouped by ``min_frequency``. The column is passed with an explicit
``likelihood={"wide": "categorical"}``: under the automatic rule a column over
1,000 categories is refused. Each epoch is timed by a callback; the table
gives each case's fastest and median epoch over ``--repeats`` fits of
``--epochs`` epochs in wall-clock seconds, the fastest in CPU seconds (of all
threads), and the ratio of that to the table without the wide column's. The
fastest epoch is the one least slowed down by other work on a shared machine;
with ``--threads 1`` its CPU time is the steadiest figure there. Run::

    python benchmarks/bench_categories.py [--rows 10000] [--epochs 5] [--repeats 3]
                                          [--threads 1]
"""

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer


def table(n_rows, n_wide, seed=0):
    """The base table, with a ``wide`` column of ``n_wide`` categories when
    ``n_wide`` is positive."""
    rng = np.random.RandomState(seed)
    z = rng.normal(size=(n_rows, 3))
    frame = pd.DataFrame(z @ rng.normal(size=(3, 6)) + 0.3 * rng.normal(size=(n_rows, 6)),
                         columns=[f"x{i}" for i in range(6)])
    frame["visits"] = rng.poisson(np.exp(0.5 + 0.3 * z[:, 0]))
    frame["plan"] = pd.Categorical(np.array(list("abcd"))[np.digitize(z[:, 1], [-1, 0, 1])])
    frame["region"] = rng.choice([f"r{i}" for i in range(7)], n_rows).astype(object)
    if n_wide:
        weights = 1.0 / np.arange(1, n_wide + 1)  # Zipf: a few common values, a long tail
        codes = rng.choice(n_wide, n_rows, p=weights / weights.sum())
        codes[:n_wide] = np.arange(n_wide)  # every category at least once
        frame["wide"] = np.array([f"v{c:05d}" for c in codes], dtype=object)
    return frame


class EpochTimer:
    """A callback that records how long each epoch takes."""

    def __init__(self):
        self.times = []

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        if context.task_name == "epoch":
            self.start = time.perf_counter(), time.process_time()

    def on_fit_task_end(self, estimator, context):
        if context.task_name == "epoch":
            wall, cpu = self.start
            self.times.append((time.perf_counter() - wall, time.process_time() - cpu))
        return False


def epoch_times(frame, epochs, **params):
    """The seconds of each epoch of a fit, and the fitted model."""
    timer = EpochTimer()
    vae = VAETransformer(n_components=8, max_iter=epochs, tol=0.0, random_state=0, **params)
    vae.set_callbacks(timer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(frame)
    return timer.times, vae


def per_epoch(cases, epochs, repeats):
    """Each case's (``(frame, params)``) epoch times over ``repeats`` rounds
    that fit every case in turn (so that a busy spell of a shared machine
    does not fall on one case only): the fastest and the median in wall-clock
    seconds, the fastest in CPU seconds (of all threads), and its number of
    logits."""
    times = [[] for _ in cases]
    n_params = [None] * len(cases)
    for _ in range(repeats):
        for i, (frame, params) in enumerate(cases):
            seconds, vae = epoch_times(frame, epochs, **params)
            times[i] += seconds
            n_params[i] = vae.module_.observation.n_params
    return [(min(w for w, _ in t), float(np.median([w for w, _ in t])), min(c for _, c in t))
            for t in times], n_params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--widths", type=int, nargs="+", default=[100, 500, 1000, 4741])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 gives steadier CPU "
                             "times on a machine shared with other work")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.rows} rows, default networks (hidden_layer_sizes=(128,)), n_components=8, "
          f"batch_size auto; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    explicit = {"likelihood": {"wide": "categorical"}}
    widest = max(args.widths)
    labels = ["without the wide column"]
    cases = [(table(args.rows, 0), {})]
    for width in args.widths:
        labels.append(f"+ wide column, {width} categories")
        cases.append((table(args.rows, width), explicit))
    for m in (5, 20):
        labels.append(f"+ {widest} categories, min_frequency={m}")
        cases.append((table(args.rows, widest), {**explicit, "min_frequency": m}))
    times, n_params = per_epoch(cases, args.epochs, args.repeats)
    base = times[0][2]
    print(f"{'seconds per epoch':<44}{'logits':>7}{'fastest':>9}{'median':>9}"
          f"{'CPU':>8}{'ratio':>7}")
    for label, (best, middle, cpu), size in zip(labels, times, n_params):
        print(f"{label:<44}{size:>7}{best:>8.2f}s{middle:>8.2f}s{cpu:>7.2f}s"
              f"{cpu / base:>6.1f}x")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
