"""The main job: VAETransformer against PCA on scikit-learn's digits.

Run with ``python -m skvae`` (or the ``skvae-demo`` command). It prints a table
(held-out log-likelihood, reconstruction error, accuracy of a logistic regression
on the codes, fit time) and writes a figure of the 2-D latent space,
reconstructions and samples.
"""

import argparse
import os
import time
import warnings

# numpy, scikit-learn and torch are imported in main(), after the arguments are
# read, so that ``--help`` answers at once.

def evaluate(model, X_train, X_test, y_train, y_test):
    """Fit ``model`` and measure it; returns a dict of figures."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    model.fit(X_train)
    fit_time = time.perf_counter() - start
    Z_train, Z_test = model.transform(X_train), model.transform(X_test)
    reconstruction = model.inverse_transform(Z_test)
    classifier = LogisticRegression(max_iter=2000).fit(Z_train, y_train)
    return {
        "held-out log-lik": model.score(X_test),
        "recon. MSE": float(np.mean((reconstruction - X_test) ** 2)),
        "LogReg accuracy": classifier.score(Z_test, y_test),
        "fit time (s)": fit_time,
    }


def format_table(rows):
    """A plain-text table from a list of (method, k, figures) tuples."""
    names = list(rows[0][2])
    header = f"{'method':<16}{'k':>4}" + "".join(f"{name:>18}" for name in names)
    lines = [header, "-" * len(header)]
    for method, k, figures in rows:
        cells = "".join(f"{figures[name]:>18.3f}" for name in names)
        lines.append(f"{method:<16}{k:>4}{cells}")
    return "\n".join(lines)


def robust_limits(values, coverage=(1, 99), margin=0.1):
    """Axis limits that show the bulk of ``values``: the given percentiles
    widened by ``margin`` of their range on each side, so that a few outlying
    points do not squash the rest into a corner."""
    import numpy as np

    low, high = np.percentile(values, coverage)
    pad = margin * (high - low) if high > low else 1.0
    return low - pad, high + pad


def draw_figure(vae, pca, X_test, y_test, path):
    """Latent spaces of the VAE and PCA, reconstructions and samples, to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig = plt.figure(figsize=(15, 5), layout="constrained")
    left, middle, right = fig.subfigures(1, 3, width_ratios=[1, 1, 1.1])
    for subfig, model, title in [(left, vae, "VAETransformer"), (middle, pca, "PCA")]:
        ax = subfig.subplots()
        Z = model.transform(X_test)
        points = ax.scatter(Z[:, 0], Z[:, 1], c=y_test, cmap="tab10", s=8)
        (x_low, x_high), (y_low, y_high) = robust_limits(Z[:, 0]), robust_limits(Z[:, 1])
        ax.set_xlim(x_low, x_high)
        ax.set_ylim(y_low, y_high)
        outside = np.sum((Z[:, 0] < x_low) | (Z[:, 0] > x_high)
                         | (Z[:, 1] < y_low) | (Z[:, 1] > y_high))
        if outside:
            ax.text(0.99, 0.01, f"{outside} codes outside the view", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8, color="0.4")
        ax.set_title(f"{title}: 2-D codes of held-out digits")
        ax.set_xticks([])
        ax.set_yticks([])
    left.colorbar(points, ax=left.axes, label="digit", ticks=range(10))
    rows = [
        ("held-out", X_test[:8]),
        ("VAE recon.", vae.inverse_transform(vae.transform(X_test[:8]))),
        ("PCA recon.", pca.inverse_transform(pca.transform(X_test[:8]))),
        # The decoder's mean at codes drawn from the prior: a draw from the
        # likelihood would add independent noise to every pixel.
        ("VAE samples", vae.sample(8, random_state=0, noise=False)),
    ]
    axes = right.subplots(len(rows), 8)
    for (label, images), row in zip(rows, axes):
        for image, ax in zip(images, row):
            ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(label, rotation=0, ha="right", va="center")
    right.suptitle("Reconstructions and samples")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _latent_size(text):
    """A ``--n-components`` value: an integer from 1 to 64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(
            f"{value} is not between 1 and 64 (the digits have 64 pixels)")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m skvae",
        description=__doc__.split("\n")[0] + " Takes about 15 s on a 2-core CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--output", default="skvae_demo.png", help="where to write the figure")
    parser.add_argument(
        "--n-components", type=_latent_size, nargs="+", default=[2, 10],
        help="latent sizes to compare (1 to 64: the digits have 64 pixels)",
    )
    parser.add_argument("--random-state", type=int, default=0, help="seed of the split and fits")
    parser.add_argument("--quiet", action="store_true", help="no progress lines while training")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="CPU threads for torch and NumPy (0: all); the demo's small networks "
        "train fastest on one, and more fight over a busy machine's cores",
    )
    args = parser.parse_args(argv)
    # Checked before anything trains, so that a typo does not cost a run.
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        parser.error(f"--output: the folder {folder} does not exist")
    if args.threads < 0:
        parser.error("--threads must be 0 (all) or a positive number")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads or None):
        return _run(args)


def _load_optimizer():
    """Build a throwaway torch optimiser: the first one a process builds
    imports torch's compiler package (about 1 s on a 2-core CPU), which would
    otherwise be counted in the first model's fit time."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _run(args):
    start = time.perf_counter()
    print("skvae demo: VAETransformer against PCA on the 8x8 digits", flush=True)
    import numpy as np  # noqa: F401 - imported here so that --help is instant
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split

    from ._estimator import VAETransformer

    _load_optimizer()

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=args.random_state
    )
    print(f"digits: {len(X_train)} training and {len(X_test)} held-out images, 64 pixels "
          f"(libraries loaded in {time.perf_counter() - start:.1f} s)", flush=True)
    rows, fitted = [], {}
    for k in args.n_components:
        # Progress while training: a bar on a terminal, a line every 2 s in logs.
        vae = VAETransformer(n_components=k, random_state=args.random_state,
                             verbose=0 if args.quiet else 1)
        for name, model in [("VAETransformer", vae), ("PCA", PCA(n_components=k))]:
            if not args.quiet:
                print(f"fitting {name} with {k} components ...", flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                rows.append((name, k, evaluate(model, X_train, X_test, y_train, y_test)))
            fitted[name, k] = model
    print(format_table(rows))
    if ("VAETransformer", 2) in fitted:
        try:
            draw_figure(fitted["VAETransformer", 2], fitted["PCA", 2], X_test, y_test, args.output)
        except ImportError:
            print("matplotlib is not installed: pip install 'skvae[demo]' to draw the figure")
            return 0
        print(f"figure written to {args.output}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
