"""Count-data benchmark: VAETransformer on single-cell counts against scvi-tools' SCVI.

Data sets (``--datasets``)
--------------------------
``pbmc``
    scanpy's bundled ``pbmc68k_reduced`` (700 cells, 765 genes, read offline).
    Integer counts are recovered from its log-normalised raw layer
    (``adata.raw.X``): ``expm1``, each cell divided by its smallest non-zero
    value, rounded. Cell types: ``obs["bulk_labels"]`` (10 types).
``synthetic``
    :func:`make_counts`: 2,000 cells x 500 genes, 5 cell types. Each type has a
    low-rank (rank 3) log-expression profile plus a small per-cell variation,
    cell depths are log-normal (sd 0.5 around 2,000 counts), counts are
    negative binomial (a dispersion per gene) and then zeroed with a per-gene
    dropout probability (Beta(1, 4), 20% on average): zero-inflated counts.

Each data set is split into 80% training and 20% held-out cells (stratified by
cell type, ``random_state`` the seed). Every model is fitted on the training
cells only.

Models
------
* ``skvae:<config>``: ``VAETransformer(likelihood="negbinom", n_components=10,
  random_state=seed)`` (scVI's latent size) and the settings of the config
  (``--skvae-configs``):

  - ``default``: nothing else: ``count_depth="auto"`` (the depth modelled,
    over these hundreds of genes) and ``early_stopping="auto"`` (on, for
    counts), ``max_iter=200``;
  - ``no-depth``: ``count_depth="none"``;
  - ``no-early-stopping``: ``early_stopping=False`` (the previous default);
  - ``guide``: ``early_stopping=True, max_iter=500, n_iter_no_change=20``;
  - ``zinb``: ``likelihood="zinb"``;
  - ``standardised-input``: the default with the encoder's input standardised
    per gene (patched in for the run), the design the library chose against;
  - ``sparse``: the default, fitted and scored on a ``scipy.sparse.csr_matrix``.

  A config that the installed skvae rejects (an unknown likelihood, parameter,
  or sparse input) is skipped with its error message. ``--skvae-params`` adds
  settings to every config (a Python dict literal).
* ``scvi``: ``scvi.model.SCVI.setup_anndata(adata)`` (counts in ``X``),
  ``SCVI(adata)`` and ``.train(accelerator="cpu")``, everything else at its
  defaults: 10 latent dimensions, zero-inflated NB, the observed library size,
  ``max_epochs`` from the data size (400 below 20,000 cells), its own 90/10
  train/validation split of the training cells. ``--no-scvi`` leaves it out.

Figures (held-out cells unless said)
------------------------------------
* ``log p(x)``: mean held-out log-likelihood per cell, with ``--importance-
  samples`` K (default 100) importance samples for every model: skvae's
  ``score_samples(X, n_importance_samples=K)``; for scVI
  ``get_marginal_ll(adata, n_mc_samples=K, return_mean=False)`` (per cell,
  log-likelihood not its negative, higher is better) plus the term below.
* ``log p(x|n)``: the same, conditional on the cell's total count ``n``.

Putting the likelihoods on one footing. skvae (negbinom, no depth model) scores
the whole count vector, its total included: the decoder predicts every gene's
mean. scVI with its default observed library size conditions on the total:
its ``get_marginal_ll`` is ``log p(x | z, l = n)`` integrated over ``z`` only,
and it has no model of ``n`` at all. So:

* for ``log p(x)`` scVI's score gets a model of the total added: a discretised
  log-normal, ``P(n) = Phi((log(n + 0.5) - m) / s) - Phi((log(n - 0.5) - m) / s)``
  with ``m`` and ``s`` the mean and sd of the log totals of the training cells
  (column ``log P(n)`` prints its held-out mean);
* for ``log p(x|n)`` skvae's score has its own ``log P(n)`` taken off: ``P(n)
  = E_z P(sum_j x_j = n | z)``, the mean over 4,096 draws of z from the prior
  (the same for every cell), the sum of the genes' independent negative
  binomials given z approximated by a continuity-corrected normal of the same
  mean and variance (on pbmc cells it was within 0.3 nats of a Monte Carlo
  count of 200,000 draws of the total). The prior is the proposal because the
  encoder's q(z | x) is much narrower than p(z | n): importance sampling from
  it put log P(n) about 9 nats too low on pbmc. That is for a negbinom
  likelihood with no depth model (``no-depth``); a model of the depth
  (``count_depth="observed"``) scores the total with its own rounded
  log-normal, which is taken off instead. ``zinb`` without a depth model
  prints ``-`` there.

Both footings understate scVI a little: its NB given ``l = n`` is normalised
over all count vectors, not over those summing to ``n``, so as a density of
``x`` given ``n`` it falls short by ``log P(sum x = n | z, l = n)``, a few nats
per cell (about 4 to 8 for skvae's NB totals on pbmc).

* ``gap``: mean training-cell ``log p(x)`` minus the held-out one (same
  footing, same K): how much each model overfits;
* ``kNN acc``: ``KNeighborsClassifier(15)`` fitted on the training cells'
  codes (posterior means: ``transform``, ``get_latent_representation``),
  accuracy of the held-out cells' types;
* ``silh``: silhouette of the held-out codes by cell type;
* ``depth R2``: R^2 on the held-out cells of a linear regression of log total
  count on the codes, fitted on the training cells (how much of the code is
  depth; scVI's observed library keeps it out of its code by design);
* ``in-type R2``: the same for the depth within cell types (log total minus
  the mean of its type's training cells): the depth the codes carry beyond
  what the cell types explain (on pbmc the types alone explain 0.45 of it,
  so codes that separate the types cannot score near 0 on ``depth R2``);
* ``theta``: median NB inverse dispersion over genes (skvae:
  ``likelihoods[0].theta()``; scVI: ``exp(px_r)``);
* ``ep``: epochs trained (``*``: skvae stopped at ``max_iter``);
* ``fit s``: seconds of the fit (scVI: ``setup_anndata``, the model and
  ``train``), with ``--threads`` torch, OpenMP and BLAS threads (default 1);
* ``+MB``: the fit's peak resident memory above the process's memory before
  it (data loaded, libraries imported, torch warmed up), and ``peak MB`` the
  process's peak. Each fit runs in a fresh process (multiprocessing "spawn"),
  the peak is Linux's ``VmHWM``, reset before the fit.

With several ``--seeds`` each figure is the median over seeds, with half the
range after ``~``.

``--large`` instead measures the peak memory of a one-epoch fit (``max_iter=1``,
negbinom) on a synthetic sparse CSR count matrix (``--large-shape``, default
200,000 x 20,000, ``--density`` 0.05: 200 million stored counts), built row
chunk by row chunk in CSR form in the child process, against the CSR's bytes
(data + indices + indptr), the model's parameter bytes and one dense float32
batch. It is skipped with a message while skvae refuses sparse input.

Needs the peers: ``pip install -e ".[bench]"`` (scvi-tools, scanpy, anndata).
Linux only (``/proc``). Run::

    python benchmarks/bench_counts.py                              # both data sets
    python benchmarks/bench_counts.py --datasets pbmc --seeds 0 1 2
    python benchmarks/bench_counts.py --skvae-configs default guide zinb depth sparse
    python benchmarks/bench_counts.py --no-scvi --skvae-params "{'n_components': 10}"
    python benchmarks/bench_counts.py --large --large-shape 20000 2000

Figures printed on a shared 2-core machine while another benchmark ran
beside them (seconds vary from run to run there; the likelihoods do not). By
``python benchmarks/bench_counts.py --datasets pbmc --seeds 0 1 2
--skvae-configs default standardised-input no-depth``::

    # CPython 3.11.7 on x86_64, 2 cores; 1 thread(s) per fit; seeds [0, 1, 2]; K = 100 importance samples
    # skvae 0.1.0, torch 2.13.0+cpu, scikit-learn 1.9.1, numpy 2.4.6, scvi-tools 1.4.2, scanpy 1.11.5, anndata 0.12.19

    ## pbmc: 700 cells x 765 genes (figures on the held-out 20%)
    model            log p(x) log p(x|n) log P(n)    gap kNN acc   silh depth R2 in-type R2  theta    ep  fit s    +MB peak MB
    --------------------------------------------------------------------------------------------------------------------------
    skvae:default   -671.4~2.5 -664.7~2.5 -6.78~0.02 29.5~5.7 0.814~0.039 0.166~0.036 0.656~0.054 0.232~0.042 2.93~0.31 109/116/122 14.0~0.3  123~2   462~2
    skvae:standardised-input -673.7~2.7 -666.9~2.8 -6.78~0.02 31.3~4.8 0.779~0.032 0.156~0.025 0.583~0.036 0.211~0.021 3.06~0.55 109/99/120 13.2~1.2  119~3   458~3
    skvae:no-depth  -670.5~3.4 -662.8~3.3 -7.70~0.11 31.4~1.9 0.814~0.032 0.125~0.043 0.905~0.010 0.711~0.022 3.01~0.29 110/96/108 11.6~0.3  120~3   459~3
    scvi            -690.2~4.3 -683.4~4.3 -6.78~0.02 71.2~5.7 0.779~0.029 0.096~0.031 0.608~0.044 0.263~0.013 2.35~0.05 400/400/400 38.9~1.4   44~1   614~1
    R2 of log depth from the cell types alone (one-hot, 5-fold): 0.451

By ``python benchmarks/bench_counts.py --datasets pbmc --seeds 0 1 2
--skvae-configs no-early-stopping sparse --no-scvi`` (a sparse matrix gives
the dense figures exactly)::

    ## pbmc: 700 cells x 765 genes (figures on the held-out 20%)
    model            log p(x) log p(x|n) log P(n)    gap kNN acc   silh depth R2 in-type R2  theta    ep  fit s    +MB peak MB
    --------------------------------------------------------------------------------------------------------------------------
    skvae:no-early-stopping -686.1~4.3 -679.3~4.3 -6.78~0.02 85.3~5.6 0.800~0.014 0.113~0.024 0.638~0.046 0.233~0.036 14.63~0.10 200*/200*/200* 13.8~0.3  107~1   446~1
    skvae:sparse    -671.4~2.5 -664.7~2.5 -6.78~0.02 29.5~5.7 0.814~0.039 0.166~0.036 0.656~0.054 0.232~0.042 2.93~0.31 109/116/122 14.0~1.1  121~3   462~3
    R2 of log depth from the cell types alone (one-hot, 5-fold): 0.451

By ``python benchmarks/bench_counts.py --datasets synthetic --seeds 0 1 2``
(the synthetic data are drawn anew for each seed, hence the spread of their
scores)::

    # CPython 3.11.7 on x86_64, 2 cores; 1 thread(s) per fit; seeds [0, 1, 2]; K = 100 importance samples
    # skvae 0.1.0, torch 2.13.0+cpu, scikit-learn 1.9.1, numpy 2.4.6, scvi-tools 1.4.2, scanpy 1.11.5, anndata 0.12.19

    ## synthetic: 2000 cells x 500 genes (figures on the held-out 20%)
    model            log p(x) log p(x|n) log P(n)    gap kNN acc   silh depth R2 in-type R2  theta    ep  fit s    +MB peak MB
    --------------------------------------------------------------------------------------------------------------------------
    skvae:default   -643.8~47.5 -635.5~47.5 -8.21~0.05 19.3~12.0 0.970~0.034 0.321~0.065 0.012~0.008 0.011~0.006 1.22~0.06 200*/200/200* 36.8~1.2  132~1   472~1
    skvae:no-depth  -639.6~48.1 -630.6~48.0 -8.98~0.08 21.6~11.6 0.960~0.031 0.256~0.042 0.611~0.068 0.600~0.062 1.35~0.02 156/148/174 24.9~2.1  128~2   469~2
    skvae:no-early-stopping -644.0~47.8 -635.7~47.8 -8.21~0.05 20.3~12.1 0.960~0.034 0.296~0.047 0.016~0.018 0.016~0.017 1.26~0.02 200*/200*/200* 23.9~0.7  132~2   472~2
    skvae:zinb      -635.8~47.8 -627.5~47.9 -8.21~0.05 20.4~11.4 0.960~0.034 0.346~0.065 -0.002~0.024 0.000~0.021 2.81~0.13 138/136/145 36.1~3.0  158~4   499~4
    scvi            -647.3~47.5 -639.0~47.5 -8.21~0.05 44.3~11.9 0.955~0.044 0.205~0.035 0.042~0.026 0.036~0.025 2.92~0.10 400/400/400 84.5~8.0     36     608
    R2 of log depth from the cell types alone (one-hot, 5-fold): -0.007

And ``python benchmarks/bench_counts.py --large --large-shape 50000 20000``::

    ## --large: one-epoch fit (max_iter=1, negbinom) on a 50000 x 20000 CSR matrix at density 0.05
    CSR size (data + indices + indptr): 382 MiB
    model parameters: 19.7 MiB; one dense float32 batch (512 rows): 39.1 MiB
    RSS before fit (torch warmed up, matrix built): 869 MiB; peak during fit: 1,398 MiB; above: 529 MiB = 1.39 x CSR; fit 375.0 s
    the fit's memory, the matrix included: 911 MiB = 2.39 x CSR; target (2 x CSR + model + one batch): 822 MiB: missed

and ``python benchmarks/bench_counts.py --large`` (the default 200,000 x
20,000 matrix)::

    ## --large: one-epoch fit (max_iter=1, negbinom) on a 200000 x 20000 CSR matrix at density 0.05
    CSR size (data + indices + indptr): 1,527 MiB
    model parameters: 19.7 MiB; one dense float32 batch (512 rows): 39.1 MiB
    RSS before fit (torch warmed up, matrix built): 2,013 MiB; peak during fit: 2,581 MiB; above: 568 MiB = 0.37 x CSR; fit 1086.6 s
    the fit's memory, the matrix included: 2,094 MiB = 1.37 x CSR; target (2 x CSR + model + one batch): 3,112 MiB: met

The issue's target is a peak within 2x the CSR size plus the model and one
dense batch. On the default 200,000 rows the fit's memory, the matrix
included, is 1.37x the CSR size (met, with 1 GB to spare). On 50,000 rows it
is 2.39x and misses by 89 MiB: what a fit adds (529 MiB here, 568 MiB on
200,000 rows) hardly grows with the matrix: the training step over a dense
512 x 20,000 batch, the model with its optimiser state and early stopping's
snapshots, and what the C allocator keeps between steps. Before the wide
count block was scored in column slices (recomputed in the backward pass)
and the stored values checked a chunk at a time, the 50,000-row fit took
997 MiB above the loaded matrix (2.6x the CSR size): the support check
copied the stored values twice in float64, and the training step's float64
terms over 512 x 20,000 entries held about a dozen dense batches. (Before
scoring batches were sized by the rows' width, it was 7,070 MiB above:
early stopping's held-out scoring decoded 256 rows x 32 importance samples
at once.)

What they show:

* skvae's defaults (the depth modelled, early stopping on) score held-out
  cells above scVI's (19 nats per cell on pbmc, 3.5 on the synthetic counts,
  11 with ``zinb``), overfit less (train-minus-held-out gap 30 against 71 on
  pbmc), separate the cell types better (silhouette 0.17 against 0.10 on
  pbmc, 0.32 against 0.21 synthetic) and fit faster.
* Without early stopping (the previous default) pbmc's held-out cells score
  15 nats lower and the gap is 85 nats.
* Without the depth model (``no-depth``) the codes carry the depth (R^2 0.91
  pbmc, 0.61 synthetic).
* On pbmc the codes predict depth a little more than scVI's (0.66 against
  0.61): the cell types alone explain 0.45 of it. Within the types (the
  nuisance part) they hold less of it than scVI's (0.23 against 0.26).
  Standardising the encoder's input brings the overall R^2 to 0.58 at the
  cost of cell-type accuracy (0.78 against 0.81) and 2 nats of held-out
  log-likelihood.
"""

import argparse
import ast
import concurrent.futures
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy as np

SKVAE_CONFIGS = {
    "default": {},
    "guide": {"early_stopping": True, "max_iter": 500, "n_iter_no_change": 20},
    "zinb": {"likelihood": "zinb"},
    "no-depth": {"count_depth": "none"},
    "no-early-stopping": {"early_stopping": False},
    "standardised-input": {},
    "sparse": {},
}
PEERS_HINT = 'pip install scvi-tools scanpy anndata   (or pip install -e ".[bench]")'


# ------------------------------------------------------------------ the data


def make_counts(n_cells=2000, n_genes=500, n_types=5, rank=3, depth=2000.0,
                depth_sd=0.5, seed=0):
    """Zero-inflated negative binomial counts with cell types and varying depth.

    Returns
    -------
    X : ndarray of shape (n_cells, n_genes), float32 whole numbers
    labels : ndarray of shape (n_cells,), int64 cell types
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(n_types, size=n_cells)
    baseline = rng.normal(0.0, 1.0, n_genes)
    factors = rng.normal(0.0, 1.0, (rank, n_genes))
    type_loadings = rng.normal(0.0, 1.0, (n_types, rank))
    cell_loadings = type_loadings[labels] + 0.3 * rng.normal(size=(n_cells, rank))
    log_rho = baseline + cell_loadings @ factors
    rho = np.exp(log_rho - log_rho.max(axis=1, keepdims=True))
    rho /= rho.sum(axis=1, keepdims=True)
    depths = depth * np.exp(rng.normal(0.0, depth_sd, n_cells))
    mu = depths[:, None] * rho
    theta = np.exp(rng.normal(np.log(3.0), 0.5, n_genes))
    counts = rng.poisson(rng.gamma(theta, mu / theta))
    dropout = rng.beta(1.0, 4.0, n_genes)
    counts[rng.random(counts.shape) < dropout] = 0
    keep = counts.sum(axis=1) > 0
    return counts[keep].astype(np.float32), labels[keep].astype(np.int64)


def load_pbmc():
    """pbmc68k_reduced's counts (recovered from ``raw.X``) and bulk labels."""
    import scanpy as sc
    import scipy.sparse as sp

    adata = sc.datasets.pbmc68k_reduced()
    raw = adata.raw.X
    raw = raw.toarray() if sp.issparse(raw) else np.asarray(raw)
    scaled = np.expm1(raw.astype(np.float64))
    smallest = np.where(scaled > 0, scaled, np.inf).min(axis=1)
    counts = np.rint(scaled / smallest[:, None])
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    return counts.astype(np.float32), labels


def load(name, seed):
    if name == "pbmc":
        return load_pbmc()
    return make_counts(seed=seed)


# ----------------------------------------------------- one fit, in a child


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak():
    # Writing 5 resets the peak resident set size (VmHWM) to the current one.
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _limit_threads(threads):
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass


def _lognormal_log_prob(totals, loc, scale):
    """Log-probability of whole-number ``totals`` under a log-normal
    discretised to the integers (the mass of [n - 0.5, n + 0.5])."""
    from scipy.stats import norm

    upper = norm.logcdf((np.log(totals + 0.5) - loc) / scale)
    lower = norm.logcdf((np.log(np.maximum(totals - 0.5, 1e-12)) - loc) / scale)
    return upper + np.log1p(-np.exp(np.minimum(lower - upper, -1e-12)))


def _skvae_log_p_total(vae, X, seed, n_draws=4096):
    """log P(total count) of each row of ``X`` under a fitted negbinom skvae
    model: the mean over ``n_draws`` draws of z from the prior (shared by all
    rows) of P(sum_j x_j = n | z), the sum of the genes' independent negative
    binomials approximated by a normal of the same mean and variance
    (continuity-corrected). None for other likelihoods.

    The prior, not the encoder's q(z | x), is the proposal: q(z | x) is much
    narrower than p(z | n), and importance sampling from it misses most of
    P(n) (on pbmc it gave log P(n) about 10 nats too low)."""
    import torch

    likelihoods = vae.module_.observation.likelihoods
    if len(likelihoods) != 1 or likelihoods[0].name != "negbinom":
        return None
    module = vae.module_
    generator = torch.Generator().manual_seed(seed)
    theta = likelihoods[0].theta().double()
    with torch.no_grad():
        z = torch.randn((n_draws, module.n_components), generator=generator)
        params = module.decode(z).double()
        if params.shape[-1] != X.shape[1]:
            return None
        mu = params.clamp(max=30.0).exp()
        sd = (mu + mu**2 / theta).sum(-1).sqrt()
        normal = torch.distributions.Normal(mu.sum(-1), sd)
        n = torch.as_tensor(np.asarray(X, dtype=np.float64).sum(axis=1))[:, None]
        mass = normal.cdf(n + 0.5) - normal.cdf(n - 0.5)
        log_pn = torch.log(mass.clamp(min=1e-300))
        return (torch.logsumexp(log_pn, 1) - np.log(n_draws)).numpy()


def _fit_skvae(config, params, X_train, X_test, seed, n_samples):
    import scipy.sparse as sp
    from sklearn.exceptions import ConvergenceWarning

    from skvae import VAETransformer

    settings = {"likelihood": "negbinom", "n_components": 10, "random_state": seed,
                **SKVAE_CONFIGS[config], **params}
    if config == "sparse":
        X_train, X_test = sp.csr_matrix(X_train), sp.csr_matrix(X_test)
    if config == "standardised-input":
        _standardise_depth_input()
    try:
        vae = VAETransformer(**settings)
    except TypeError as error:
        return {"skipped": f"{type(error).__name__}: {error}"}
    baseline = _status_kib("VmRSS")
    _reset_peak()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        try:
            vae.fit(X_train)
        except (TypeError, ValueError) as error:
            return {"skipped": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
        seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    stopped = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    likelihood = vae.module_.observation.likelihoods[0]
    theta = likelihood.theta() if hasattr(likelihood, "theta") else None
    result = {
        "seconds": seconds, "peak_kib": peak, "above_kib": peak - baseline,
        "epochs": f"{vae.n_iter_}" + ("*" if stopped else ""),
        "theta": None if theta is None else float(theta.detach().median()),
        "codes_train": vae.transform(X_train), "codes_test": vae.transform(X_test),
        "score_train": vae.score_samples(X_train, n_importance_samples=n_samples),
        "score_test": vae.score_samples(X_test, n_importance_samples=n_samples),
        "conditional": False,
    }
    dense_test = X_test.toarray() if sp.issparse(X_test) else X_test
    if getattr(likelihood, "depth", False):
        # Its score holds its own model of the total: take that off for log p(x|n).
        import torch

        totals = torch.as_tensor(dense_test.sum(axis=1, dtype=np.float64))
        result["log_p_total_test"] = likelihood.log_depth(totals).numpy()
    else:
        result["log_p_total_test"] = _skvae_log_p_total(vae, dense_test, seed)
    return result


def _standardise_depth_input():
    """The ``standardised-input`` config: the encoder of a model of the depth
    sees the depth-normalised log counts standardised column by column (with
    the moments of ``log1p`` of the raw counts), as the input of a count
    likelihood without the depth is, instead of unstandardised: the design
    the library chose against."""
    import torch

    from skvae import _likelihoods

    plain = _likelihoods._Counts.network_input

    def network_input(self, x):
        if not self.depth:
            return plain(self, x)
        total = x.sum(-1, keepdim=True)
        typical = self.depth_loc.exp().to(x.dtype)
        x = torch.where(total > 0, x * (typical / total.clamp(min=1)), x)
        return (torch.log1p(x) - self.input_loc) / self.input_scale

    _likelihoods._Counts.network_input = network_input


def _fit_scvi(X_train, X_test, seed, n_samples):
    import logging

    import anndata
    import scvi

    for name in ("lightning", "lightning.pytorch", "lightning.fabric",
                 "lightning.fabric.utilities.seed", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)
    scvi.settings.verbosity = logging.ERROR
    scvi.settings.seed = seed
    warnings.filterwarnings("ignore")
    train = anndata.AnnData(X_train.copy())
    test = anndata.AnnData(X_test.copy())
    baseline = _status_kib("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    scvi.model.SCVI.setup_anndata(train)
    model = scvi.model.SCVI(train)
    model.train(accelerator="cpu", enable_progress_bar=False,
                enable_model_summary=False)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")

    def marginal(adata):
        # Per cell (return_mean=False); log-likelihood, higher is better.
        return model.get_marginal_ll(
            adata, n_mc_samples=n_samples, return_mean=False,
            n_mc_samples_per_pass=min(n_samples, 50)).numpy().astype(np.float64)

    return {
        "seconds": seconds, "peak_kib": peak, "above_kib": peak - baseline,
        "epochs": str(len(model.history["elbo_train"])),
        "theta": float(np.median(np.exp(model.module.px_r.detach().numpy()))),
        "codes_train": model.get_latent_representation(train),
        "codes_test": model.get_latent_representation(test),
        "score_train": marginal(train), "score_test": marginal(test),
        "conditional": True,
    }


def fit_one(model, data_path, threads, seed, n_samples, params):
    """Fit one model in this (fresh) process and return its raw results."""
    _limit_threads(threads)
    data = np.load(data_path)
    X_train, X_test = data["X_train"], data["X_test"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # Warm torch up (allocator, thread pools) before the baseline is read.
        import torch

        torch.nn.Linear(4, 4)(torch.zeros(2, 4)).sum().backward()
    if model == "scvi":
        return _fit_scvi(X_train, X_test, seed, n_samples)
    return _fit_skvae(model.split(":", 1)[1], params, X_train, X_test, seed, n_samples)


def in_child(function, *args):
    """``function(*args)`` in a fresh spawned process."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


# --------------------------------------------------------------- the figures


def evaluate(raw, y_train, y_test, totals_train, totals_test):
    """The printed figures of one fitted model."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score, silhouette_score
    from sklearn.neighbors import KNeighborsClassifier

    log_train, log_test = np.log(totals_train), np.log(totals_test)
    loc, scale = log_train.mean(), log_train.std()
    ln_train = _lognormal_log_prob(totals_train, loc, scale)
    ln_test = _lognormal_log_prob(totals_test, loc, scale)
    full_train, full_test = raw["score_train"], raw["score_test"]
    conditional_test = None
    figures = {}
    if raw["conditional"]:
        conditional_test = full_test
        full_train, full_test = full_train + ln_train, full_test + ln_test
        figures["log P(n)"] = ln_test.mean()
    elif raw.get("log_p_total_test") is not None:
        conditional_test = full_test - raw["log_p_total_test"]
        figures["log P(n)"] = raw["log_p_total_test"].mean()
    figures["log p(x)"] = full_test.mean()
    figures["log p(x|n)"] = (None if conditional_test is None
                             else conditional_test.mean())
    figures["gap"] = full_train.mean() - full_test.mean()
    Z_train, Z_test = raw["codes_train"], raw["codes_test"]
    knn = KNeighborsClassifier(n_neighbors=15).fit(Z_train, y_train)
    figures["kNN acc"] = knn.score(Z_test, y_test)
    figures["silh"] = silhouette_score(Z_test, y_test)
    depth = LinearRegression().fit(Z_train, log_train)
    figures["depth R2"] = r2_score(log_test, depth.predict(Z_test))
    # The same for the depth within each cell type: its log minus the mean of
    # the type's training cells, what the types cannot explain.
    type_means = {label: log_train[y_train == label].mean() for label in np.unique(y_train)}
    within_train = log_train - np.array([type_means[label] for label in y_train])
    within_test = log_test - np.array([type_means.get(label, loc) for label in y_test])
    depth = LinearRegression().fit(Z_train, within_train)
    figures["in-type R2"] = r2_score(within_test, depth.predict(Z_test))
    figures["theta"] = raw["theta"]
    figures["ep"] = raw["epochs"]
    figures["fit s"] = raw["seconds"]
    figures["+MB"] = raw["above_kib"] / 1024
    figures["peak MB"] = raw["peak_kib"] / 1024
    return figures


COLUMNS = [("log p(x)", 9, 1), ("log p(x|n)", 10, 1), ("log P(n)", 8, 2),
           ("gap", 6, 1), ("kNN acc", 7, 3), ("silh", 6, 3), ("depth R2", 8, 3),
           ("in-type R2", 10, 3),
           ("theta", 6, 2), ("ep", 5, None), ("fit s", 6, 1), ("+MB", 6, 0),
           ("peak MB", 7, 0)]


def summarise(values, digits):
    """Median over seeds, with half the range after ``~`` when it shows;
    values printed as they are (``digits`` None, or text) joined by ``/``."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if digits is None or isinstance(values[0], str):
        return "/".join(str(v) for v in values)
    text = f"{np.median(values):.{digits}f}"
    spread = (max(values) - min(values)) / 2
    if len(values) > 1 and round(spread, digits) > 0:
        text += f"~{spread:.{digits}f}"
    return text


def print_rows(title, rows, columns, width=12):
    """A table of ``rows`` (model: one dict of figures per seed, or the text
    of why it was skipped) in ``columns`` (name, width, digits)."""
    print(f"\n## {title}")
    header = f"{'model':<{width}}" + "".join(f" {c:>{w}}" for c, w, _ in columns)
    print(header)
    print("-" * len(header))
    for model, runs in rows.items():
        if isinstance(runs, str):
            print(f"{model:<{width}} skipped: {runs}")
            continue
        cells = [summarise([r.get(c) for r in runs], d).rjust(w) for c, w, d in columns]
        print(f"{model:<{width}}" + "".join(" " + cell for cell in cells), flush=True)


def print_table(name, rows, shape):
    print_rows(f"{name}: {shape[0]} cells x {shape[1]} genes (figures on the held-out 20%)",
               rows, COLUMNS, width=15)


def depth_from_types(totals, labels):
    """R^2 (5-fold cross-validated) of a linear regression of the log depth on
    the one-hot cell types: how much of the depth the types alone explain, a
    floor for codes that separate the types."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.preprocessing import OneHotEncoder

    onehot = OneHotEncoder().fit_transform(np.asarray(labels).reshape(-1, 1)).toarray()
    return cross_val_score(LinearRegression(), onehot, np.log(totals), cv=5, scoring="r2").mean()


def conditions(args):
    import sklearn
    import torch

    import skvae

    versions = [f"skvae {skvae.__version__}",
                f"torch {torch.__version__}", f"scikit-learn {sklearn.__version__}",
                f"numpy {np.__version__}"]
    for peer in ("scvi", "scanpy", "anndata"):
        try:
            from importlib.metadata import version

            dist = {"scvi": "scvi-tools"}.get(peer, peer)
            versions.append(f"{dist} {version(dist)}")
        except Exception:  # noqa: BLE001 - not installed
            versions.append(f"{peer}: not installed")
    print(f"# {platform.python_implementation()} {platform.python_version()} on "
          f"{platform.machine()}, {os.cpu_count()} cores; {args.threads} thread(s) "
          f"per fit; seeds {args.seeds}; K = {args.importance_samples} importance "
          "samples")
    print("# " + ", ".join(versions))


# ----------------------------------------------------------------- --large


def _large_child(shape, density, threads, seed):
    import scipy.sparse as sp

    _limit_threads(threads)
    from skvae import VAETransformer

    with warnings.catch_warnings():
        # Warm torch and skvae up (allocator, thread pools, kernels) before
        # the baseline is read.
        warnings.simplefilter("ignore")
        warm = np.random.default_rng(0).poisson(1.0, (64, 8)).astype(np.float32)
        VAETransformer(likelihood="negbinom", max_iter=1).fit(warm)
    n_rows, n_cols = shape
    rng = np.random.default_rng(seed)
    per_row = max(1, int(round(density * n_cols)))
    # One stored entry per stratum of columns, so that each row's columns are
    # distinct and sorted without a per-row loop.
    edges = np.linspace(0, n_cols, per_row + 1).astype(np.int64)
    starts, widths = edges[:-1], np.diff(edges)
    nnz = n_rows * per_row
    index_dtype = np.int32 if nnz < 2**31 else np.int64  # one dtype: no copy
    data = np.empty(nnz, np.float32)
    indices = np.empty(nnz, index_dtype)
    chunk = max(1, 2_000_000 // per_row)
    for lo in range(0, n_rows, chunk):
        hi = min(n_rows, lo + chunk)
        cols = starts + (rng.random((hi - lo, per_row)) * widths).astype(np.int64)
        indices[lo * per_row:hi * per_row] = cols.ravel()
        data[lo * per_row:hi * per_row] = 1 + rng.poisson(1.0, (hi - lo) * per_row)
    indptr = np.arange(0, nnz + 1, per_row, dtype=index_dtype)
    X = sp.csr_matrix((data, indices, indptr), shape=shape)
    csr_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    vae = VAETransformer(likelihood="negbinom", max_iter=1, random_state=seed)
    baseline = _status_kib("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            vae.fit(X)
        except (TypeError, ValueError) as error:
            return {"skipped": f"{type(error).__name__}: {str(error).splitlines()[0]}",
                    "csr_bytes": csr_bytes}
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    param_bytes = sum(p.numel() * p.element_size() for p in vae.module_.parameters())
    batch = vae.batch_size if isinstance(vae.batch_size, int) else min(
        512, max(32, -(-n_rows // 4)))
    return {"csr_bytes": csr_bytes, "param_bytes": param_bytes,
            "batch_bytes": batch * n_cols * 4, "batch": batch,
            "baseline_kib": baseline, "peak_kib": peak, "seconds": seconds}


def run_large(args):
    shape = tuple(args.large_shape)
    print(f"\n## --large: one-epoch fit (max_iter=1, negbinom) on a {shape[0]} x "
          f"{shape[1]} CSR matrix at density {args.density}")
    result = in_child(_large_child, shape, args.density, args.threads, args.seeds[0])
    mib = 1024**2
    print(f"CSR size (data + indices + indptr): {result['csr_bytes'] / mib:,.0f} MiB")
    if "skipped" in result:
        print(f"skipped: the installed skvae does not fit sparse input "
              f"({result['skipped']})")
        return
    above = (result["peak_kib"] - result["baseline_kib"]) * 1024
    print(f"model parameters: {result['param_bytes'] / mib:,.1f} MiB; one dense "
          f"float32 batch ({result['batch']} rows): "
          f"{result['batch_bytes'] / mib:,.1f} MiB")
    print("RSS before fit (torch warmed up, matrix built): "
          f"{result['baseline_kib'] / 1024:,.0f} MiB; "
          f"peak during fit: {result['peak_kib'] / 1024:,.0f} MiB; above: "
          f"{above / mib:,.0f} MiB = {above / result['csr_bytes']:.2f} x CSR; fit "
          f"{result['seconds']:.1f} s")
    target = 2 * result["csr_bytes"] + result["param_bytes"] + result["batch_bytes"]
    own = above + result["csr_bytes"]
    print(f"the fit's memory, the matrix included: {own / mib:,.0f} MiB = "
          f"{own / result['csr_bytes']:.2f} x CSR; target (2 x CSR + model + one batch): "
          f"{target / mib:,.0f} MiB: {'met' if own <= target else 'missed'}")


# ---------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["pbmc", "synthetic"],
                        choices=["pbmc", "synthetic"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--skvae-configs", nargs="+",
                        default=["default", "no-depth", "no-early-stopping", "zinb"],
                        choices=list(SKVAE_CONFIGS))
    parser.add_argument("--skvae-params", type=ast.literal_eval, default={},
                        help="extra VAETransformer settings, a dict literal")
    parser.add_argument("--no-scvi", action="store_true", help="leave scVI out")
    parser.add_argument("--importance-samples", type=int, default=100,
                        help="K for every model's held-out log p(x) (default 100)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch, OpenMP and BLAS threads per fit (default 1)")
    parser.add_argument("--large", action="store_true",
                        help="only the peak memory of a fit on a large sparse matrix")
    parser.add_argument("--large-shape", nargs=2, type=int, default=[200_000, 20_000])
    parser.add_argument("--density", type=float, default=0.05)
    args = parser.parse_args(argv)

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)  # inherited by the spawned fits
    conditions(args)
    if args.large:
        run_large(args)
        return
    models = [f"skvae:{c}" for c in args.skvae_configs]
    if not args.no_scvi:
        try:
            import scvi  # noqa: F401
        except ImportError:
            print(f"# scvi-tools is not installed: its rows are skipped. {PEERS_HINT}")
        else:
            models.append("scvi")
    from sklearn.model_selection import train_test_split

    with tempfile.TemporaryDirectory() as folder:
        for dataset in args.datasets:
            rows = {model: [] for model in models}
            for seed in args.seeds:
                X, labels = load(dataset, seed)
                train, test = train_test_split(np.arange(len(X)), test_size=0.2,
                                               stratify=labels, random_state=seed)
                path = os.path.join(folder, f"{dataset}-{seed}.npz")
                np.savez(path, X_train=X[train], X_test=X[test])
                totals = X.sum(axis=1).astype(np.float64)
                for model in models:
                    if isinstance(rows[model], str):
                        continue
                    start = time.perf_counter()
                    raw = in_child(fit_one, model, path, args.threads, seed,
                                   args.importance_samples, args.skvae_params)
                    if "skipped" in raw:
                        rows[model] = raw["skipped"]
                        print(f"# {dataset} {model}: skipped, {raw['skipped']}")
                        continue
                    rows[model].append(evaluate(raw, labels[train], labels[test],
                                                totals[train], totals[test]))
                    print(f"# {dataset} seed {seed} {model}: done in "
                          f"{time.perf_counter() - start:.0f} s", flush=True)
            print_table(dataset, rows, X.shape)
            print(f"R2 of log depth from the cell types alone (one-hot, 5-fold): "
                  f"{depth_from_types(totals, labels):.3f}")


if __name__ == "__main__":
    sys.exit(main())
