"""Setting up and running one ``fit`` or ``partial_fit`` call.

The estimator validates its parameters and input, keeps the transaction that
undoes a failed fit, its callbacks, fitted attributes and warnings; a
:class:`FitRun` does what lies between: the process group and the device, the
checks that every rank's shard fits the others, building the observation model
and the networks (a fresh fit) or coding the rows for the fitted ones (a warm
start or ``partial_fit``), the training rows as one
:class:`~skvae._training.TrainingData` (row weights and the missing-value mask
inside it), the settings, objective and optimiser, running the loop on the
device and bringing the model back, and how much each latent dimension is used.

A run reads the estimator's public parameters only and hands what it built back
as its own attributes (``module``, ``specs``, ``generator``, ...), which the
estimator keeps under its fitted names. Every rank of a distributed fit makes the
same collective calls in the same order (see :mod:`skvae._distributed`).
"""

import contextlib
import copy
import functools
import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import _check_sample_weight

from ._data import (
    EVAL_BATCH_SIZE,
    MAX_SEED,
    batch_slices,
    dense_rows,
    draw_seed,
    make_generator,
    place_rows,
    resolve_device,
    seeded_torch,
    split_validation,
    to_tensor,
)
from ._distributed import (
    ERROR,
    INTERRUPT,
    SINGLE,
    Agreement,
    ShardError,
    collective,
    local_device,
)
from ._elbo import Objective, gaussian_kl_terms
from ._faults import data_size, network_size, out_of_memory, training_size
from ._likelihoods import COUNT_LIKELIHOOD, LIKELIHOODS, describe, observed_mask
from ._modules import build_module
from ._tables import (
    build_observation,
    column_specs,
    encode,
    is_dataframe,
    merge_specs,
    missing_entries,
)
from ._training import (
    TrainingData,
    TrainingDivergedError,
    TrainingSettings,
    auto_batch_size,
    auto_learning_rate,
    make_optimizer,
    move_optimizer_state,
    train_module,
    update_optimizer,
)
from ._warn import warn

# A latent dimension is active when its mean KL to the prior over the training
# rows exceeds this many nats (see ``active_components_``). Dimensions the model
# has given up keep 0.01-0.04 nats at the end of a fit of a few hundred epochs
# (digits, breast_cancer), the ones it uses 0.15 and more: 0.1 separates them,
# where 0.01 (or Burda et al.'s variance of the posterior mean above 0.01)
# would count most of the abandoned ones as used.
ACTIVE_KL = 0.1


class FitRun:
    """One call of ``fit`` or ``partial_fit`` of the estimator ``params``.

    Parameters
    ----------
    params : VAETransformer
        The estimator; only its public parameters are read.
    max_iter : int
        Epochs to run (1 for ``partial_fit``).
    early_stopping : bool or "auto"
        Whether rows are held out and monitored; ``"auto"`` is decided once the
        model is built or resumed (see :func:`resolve_early_stopping`).

    Attributes
    ----------
    collective : skvae._distributed.Collective
        The processes fitting together (:data:`~skvae._distributed.SINGLE`:
        this one alone).
    agreement : skvae._distributed.Agreement
        Where the ranks decide together on an interrupt or an error on one of
        them; ``agreement.deferring_interrupts()`` around the fit makes a
        Ctrl-C on one rank wait for the next boundary.
    device : torch.device
        Where training runs.
    X : ndarray
        The rows coded as the float matrix the model sees (after
        :meth:`build` or :meth:`resume`).
    module, specs, generator, optimizer, history
        The model trained: built here or the fitted one continued.
    eval_seed, structure
        Set by :meth:`build`: the seed of ``score_samples``' draws and the
        networks' recipe.
    """

    def __init__(self, params, max_iter, early_stopping):
        self.params, self.max_iter, self.early_stopping = params, max_iter, early_stopping
        self.collective = collective(params.distributed)
        self.agreement = Agreement(self.collective)
        if params.distributed and params.compile:
            raise ValueError("compile=True is not supported with distributed=True yet.")
        device = local_device(params.device) if params.distributed else None
        self.device = device or resolve_device(params.device)
        if self.collective.distributed and self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # nccl's collectives run on the current device
        self.optimizer = self.history = self.reached = None

    # ------------------------------------------------------------ the model

    def check_shard(self, validate, X):
        """``validate(X)``; under a distributed collective, also check that every
        rank's shard fits the others (the same columns and dtypes, some rows),
        raising the same error on every rank rather than leaving some waiting."""
        group = self.collective
        if not group.distributed:
            return validate(X)
        raw = group.checked(validate, X)
        shards = group.all_gather(_shard_summary(raw))
        for rank, shard in enumerate(shards):
            if shard[:2] != shards[0][:2]:
                group.raise_if_any(ShardError(
                    f"rank {rank}'s shard has columns {shard[0]} of dtypes {shard[1]}, "
                    f"rank 0's {shards[0][0]} of {shards[0][1]}; every rank must pass "
                    "the same columns."
                ))
        return raw

    def resume(self, raw, module, specs, generator, optimizer, history):
        """Continue the fitted model (a warm start or ``partial_fit``) on the
        validated input ``raw``."""
        self.module, self.specs, self.generator = module, specs, generator
        self.optimizer, self.history = optimizer, history
        self.X = encode(raw, module.observation, specs, self.params.handle_unknown)
        self.missing = self.collective.any(missing_entries(self.X))

    @out_of_memory(network_size)
    def build(self, raw, n_components):
        """Build a fresh model for the validated input ``raw``, with
        ``n_components`` latent dimensions, and its random streams."""
        params, group = self.params, self.collective
        seed = group.broadcast(draw_seed(params.random_state))
        self.generator = make_generator(seed, "cpu")
        self.eval_seed = int(torch.randint(MAX_SEED, (1,), generator=self.generator))
        init = make_generator(int(torch.randint(MAX_SEED, (1,), generator=self.generator)),
                              "cpu")
        self.specs = merge_specs(group, group.checked(
            column_specs, raw, params.likelihood, LIKELIHOODS, params.covariates))
        options = {
            "min_variance": params.min_variance,
            "hidden_layer_sizes": params.hidden_layer_sizes,
            "activation": params.activation,
            "image_shape": params.image_shape,
            "conv_channels": params.conv_channels,
        }
        # Built-in likelihoods draw no random numbers; a user's may, in its
        # constructor, from torch's global state: seed it for them.
        plugins = any(not isinstance(spec.likelihood, str) for spec in self.specs)
        grouping = {"min_frequency": params.min_frequency,
                    "max_categories": params.max_categories,
                    "count_depth": params.count_depth,
                    "encode_covariates": params.encode_covariates}
        with seeded_torch(seed) if plugins else contextlib.nullcontext():
            observation = build_observation(raw, self.specs, {**options, **grouping}, group,
                                            params.likelihood)
        X = self.X = group.checked(encode, raw, observation, self.specs)
        self.covariate_rows = covariate_rows(X, observation, group)
        # A model trained on incomplete rows sees the mask of observed entries
        # beside the values; on complete rows it needs no mask.
        self.missing = group.any(missing_entries(X))
        if self.missing:
            check_missing(X, observation, [spec.name for spec in self.specs], group)
        self.structure = {
            "architecture": params.architecture,
            "n_components": n_components,
            "options": options,
            "encoder": params.encoder,
            "decoder": params.decoder,
            "n_mask_inputs": X.shape[1] if self.missing else 0,
        }
        module = build_module(observation, self.structure, init)
        observation.fit_data(X, group)
        # Plug-ins that return the wrong shapes are named here, before training.
        group.checked(module.check, torch.nan_to_num(to_tensor(X[:2], "cpu")),
                      make_generator(0, "cpu"))
        self.module = module

    # ------------------------------------------------------------ training

    @out_of_memory(data_size)
    def prepare(self, raw, sample_weight=None):
        """The training rows, settings and optimiser, for the model of
        :meth:`build` or :meth:`resume`; ``raw`` is the validated input that
        ``sample_weight`` belongs to."""
        params, group, X = self.params, self.collective, self.X
        self.early_stopping = resolve_early_stopping(self.early_stopping,
                                                     self.module.observation)
        batch_rows = (max(group.all_gather(X.shape[0])) if params.batch_size == "auto"
                      else X.shape[0])
        self.settings = settings(params, self.max_iter, batch_rows)
        seed = int(torch.randint(MAX_SEED, (1,), generator=self.generator))
        # Each rank shuffles its own shard and draws its own noise.
        self.device_generator = make_generator(seed + group.rank, self.device)
        self.data = self._training_data(raw, sample_weight)
        # Set only once the data and weights have passed their checks.
        batch_size = self.settings.batch_size
        rate = (auto_learning_rate(batch_size) if params.learning_rate_init == "auto"
                else params.learning_rate_init)
        if self.optimizer is not None:  # the current rate and penalty, on the kept moments
            update_optimizer(self.optimizer, rate, params.alpha)
        else:
            self.optimizer = make_optimizer(self.module, rate, params.alpha)

    def _training_data(self, raw, sample_weight):
        group, batch_size = self.collective, self.settings.batch_size
        # A shard too small to hold rows out fails on every rank.
        x, chunk_rows, train_rows, valid_rows = group.checked(
            self._place_rows, self.X, batch_size)
        if sample_weight is not None:
            sample_weight = row_weights(sample_weight, raw, train_rows, valid_rows, group)
            sample_weight = sample_weight.to(x.device, torch.float32)
        steps = None
        if group.distributed:
            n_rows = x.shape[0] if train_rows is None else train_rows.shape[0]
            steps = max(group.all_gather(-(-n_rows // batch_size)))
        return TrainingData(x, self.device, train_rows=train_rows, valid_rows=valid_rows,
                            chunk_rows=chunk_rows, collective=group, steps=steps,
                            missing=self.missing, sample_weight=sample_weight,
                            agreement=self.agreement)

    def _place_rows(self, X, batch_size):
        """The rows to train on, where training reads them, and the indices of
        the training and held-out rows (None without early stopping)."""
        # A float32 array is used in place (no copy); other input is copied once
        # to float32. Early stopping holds rows out by index, not by copying.
        x, chunk_rows = place_rows(to_tensor(X, "cpu"), self.device, batch_size)
        if not self.early_stopping:
            return x, chunk_rows, None, None
        rows = split_validation(x.shape[0], self.params.validation_fraction,
                                self.device_generator)
        train_rows, valid_rows = (r.to(x.device) for r in rows)  # where the data live
        return x, chunk_rows, train_rows, valid_rows

    @out_of_memory(training_size)
    def train(self, hooks=()):
        """Run the loop on the device with ``hooks``; the model comes back to
        the CPU however it ends. Returns the :class:`TrainingResult`."""
        params = self.params
        objective = Objective(params.beta, params.kl_warmup_epochs, params.n_importance_samples)
        module = self.module.to(self.device)
        move_optimizer_state(self.optimizer, self.device)
        # What training reached, kept should it end in an error.
        hooks = [*hooks, _Reached(self)]
        try:
            return train_module(module, self.optimizer, self.data, objective, self.settings,
                                self.device_generator, self.history, hooks)
        finally:
            self.module = module.to("cpu")
            move_optimizer_state(self.optimizer, torch.device("cpu"))

    def reached_attributes(self):
        """The fitted attributes of the model as training left it, ended by an
        error: its weights, optimiser, history and curves, and the use of its
        latent dimensions on this process's rows (no collective call after an
        error)."""
        result = self.reached
        return {"module_": self.module, "_optimizer": self.optimizer, "_history": result,
                **fitted_curves(result, self.early_stopping),
                **self.latent_usage(self.module)}

    def agreed(self, function, *args, interrupt=True, **kwargs):
        """``function(*args, **kwargs)`` (a callback's hook, say), its error on
        one rank raised on every rank; likewise an interrupt recorded so far,
        as KeyboardInterrupt, when ``interrupt``. Only the call itself in one
        process."""
        agreement = self.agreement
        if not self.collective.distributed:
            return function(*args, **kwargs)
        out = agreement.guard(functools.partial(function, *args, **kwargs))
        agreement.agree()
        if agreement.decided == ERROR:
            agreement.raise_error()
        if interrupt and agreement.decided == INTERRUPT:
            raise KeyboardInterrupt(
                f"Training was interrupted on rank {agreement.ranks[0]} before it began.")
        return out

    def latent_usage(self, module=None):
        """``kl_per_component_`` and ``active_components_`` of the trained
        module on every rank's rows; of ``module`` (a copy taken during
        training, for a callback) on this process's rows, with no collective
        call, since a callback may ask on one rank only."""
        if module is None:
            return latent_usage(self.module, self.X, self.device, self.collective)
        return latent_usage(module, self.X, self.device)


# sample() without covariate values draws them from at most this many of the
# training rows' distinct covariate values (with their counts).
COVARIATE_ROWS = 10_000


def covariate_rows(X, observation, group=SINGLE):
    """``(values, counts)``: the distinct coded covariate rows of ``X`` over
    every rank and how many rows have each (at most :data:`COVARIATE_ROWS`,
    evenly spaced in sorted order); None for a model without covariates."""
    columns = observation.covariate_columns
    if not columns:
        return None
    values = np.asarray(X[:, columns], dtype=np.float64)
    local = np.unique(values, axis=0, return_counts=True)
    parts = group.all_gather(local)
    values, inverse = np.unique(np.concatenate([v for v, _ in parts]), axis=0,
                                return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=np.concatenate([c for _, c in parts]))
    if len(values) > COVARIATE_ROWS:
        keep = np.linspace(0, len(values) - 1, COVARIATE_ROWS).astype(int)
        values, counts = values[keep], counts[keep]
    return values, counts


# n_components="auto" first fits this many dimensions at most (fewer when there
# are fewer features) and keeps as many as that fit uses.
AUTO_MAX_COMPONENTS = 64


def choose_n_components(estimator, raw, y, sample_weight=None):
    """The size ``n_components="auto"`` chooses for ``estimator`` on the
    validated input ``raw``: the number of active dimensions (at least one) of
    a model first fitted with ``min(n_features, AUTO_MAX_COMPONENTS)``, on the
    same ``sample_weight``."""
    largest = min(raw.shape[1], AUTO_MAX_COMPONENTS)
    if largest == 1:
        return 1
    probe = clone(estimator).set_params(n_components=largest, warm_start=False)
    # The callbacks watch the final fit only.
    probe.__dict__.pop("_skl_callbacks", None)
    with warnings.catch_warnings():
        # The final fit warns when it does not converge; the probe need not.
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(raw, y, sample_weight=sample_weight)
    return max(1, int(probe.active_components_.sum()))


class _Reached:
    """A training hook that keeps the run's result as it stands at the end of
    training, however training ends, as ``run.reached``."""

    def __init__(self, run):
        self.run = run
        run.reached = None

    def on_train_end(self, result):
        self.run.reached = result


def resolve_early_stopping(early_stopping, observation):
    """``early_stopping``, with ``"auto"`` decided for the ``observation``:
    on when one of its likelihoods is for counts (a subclass of the built-in
    count likelihoods' base), whose defaults otherwise overfit, else off."""
    if early_stopping != "auto":
        return bool(early_stopping)
    return any(isinstance(lik, COUNT_LIKELIHOOD) for lik in observation.likelihoods)


def fitted_curves(result, monitored):
    """The estimator's attributes that describe the training ``result`` (a
    :class:`~skvae._training.TrainingResult`): its epochs, its loss curve and,
    when held-out rows were ``monitored``, their scores."""
    return {
        "n_iter_": result.n_iter,
        "loss_curve_": list(result.loss_curve),
        "best_loss_": result.best_loss,
        "validation_scores_": list(result.validation_scores) if monitored else None,
        "best_validation_score_": result.best_validation_score if monitored else None,
    }


def settings(params, max_iter, n_rows):
    """The :class:`TrainingSettings` of the estimator ``params`` for ``max_iter``
    epochs over ``n_rows`` rows (those ``batch_size`` is clipped to or sized on)."""
    return TrainingSettings(
        max_iter=max_iter,
        batch_size=(auto_batch_size(n_rows) if params.batch_size == "auto"
                    else min(params.batch_size, n_rows)),
        tol=params.tol,
        n_iter_no_change=params.n_iter_no_change,
        learning_rate=params.learning_rate,
        max_grad_norm=params.max_grad_norm,
        mixed_precision=params.mixed_precision,
        compile=params.compile,
        validation_samples=params.n_score_samples,
    )


def row_weights(sample_weight, raw, train_rows, valid_rows, group=SINGLE):
    """``sample_weight`` checked for the rows ``raw``, as a float64 tensor scaled
    to mean 1 over the training rows (``train_rows``; all when None) of every
    rank; an error when no training row, or no held-out row (``valid_rows``),
    weighs anything."""
    weights = group.checked(_check_sample_weight, sample_weight, raw, dtype=np.float64,
                            ensure_non_negative=True)
    weights = torch.as_tensor(weights)
    train = weights if train_rows is None else weights[train_rows.cpu()]
    total, count = group.sum([float(train.sum()), train.shape[0]])
    if total <= 0:
        raise ValueError(
            "sample_weight is zero for every training row; at least one row must "
            "have a positive weight."
        )
    if valid_rows is not None:
        (held_out,) = group.sum([float(weights[valid_rows.cpu()].sum())])
        if held_out <= 0:
            raise ValueError(
                "sample_weight is zero for every row early stopping held out (a "
                "random validation_fraction of the rows), so there is no score to "
                "stop on. Drop the rows of weight 0, raise validation_fraction, or "
                "set early_stopping=False."
            )
    return weights * (count / total)


def check_missing(X, observation, names, group=SINGLE):
    """Clear errors for missing entries a model cannot learn from: a column
    (named in ``names``) with no observed value on any rank, a likelihood that
    cannot score incomplete rows; a warning when almost nothing is observed."""
    counts = sum(np.isnan(X[start : start + 4096]).sum(axis=0)
                 for start in range(0, len(X), 4096))
    if group.distributed:  # a shard with nothing observed: on every rank, naming it
        group.checked(_check_observed, counts, len(X))
    # Over all ranks: a column missing from one shard is learnt from the others.
    *counts, n_rows = group.sum([float(c) for c in counts] + [float(len(X))])
    counts = np.asarray(counts)
    empty = [names[j] for j in np.flatnonzero(counts == n_rows)]
    if empty:
        raise ValueError(
            f"Columns {empty} have no observed values in X (every entry is "
            "missing): there is nothing to learn about them. Drop them, or use "
            "VAEImputer(keep_empty_features=True)."
        )
    for lik, cols in zip(observation.likelihoods, observation.columns):
        if counts[cols].any() and not lik.supports_missing:
            raise ValueError(
                f"likelihood {describe(type(lik))} cannot score rows with missing "
                f"entries (columns {[names[j] for j in cols]} have some): implement "
                "its log_prob_terms (see skvae.Likelihood)."
            )
    share = counts.sum() / (n_rows * X.shape[1])
    if share > 0.95:
        warn(
            f"{share:.1%} of the entries of X are missing; a model learns little "
            "from so few observed values.",
            UserWarning,
        )


def _check_observed(missing_counts, n_rows):
    if np.all(missing_counts == n_rows):
        raise ValueError(
            "this rank's shard has no observed values (every entry of its "
            f"{n_rows} rows is missing): check how the shard was read."
        )


def latent_usage(module, X, device, group=SINGLE):
    """``kl_per_component_`` and ``active_components_`` of ``module`` (left
    where and as it was) on the coded rows ``X``, computed on ``device``, over
    every rank's rows under ``group``."""
    if device.type != "cpu":
        module = copy.deepcopy(module).to(device)
    training = module.training
    module.eval()
    mask = observed_mask(missing_entries(X))
    total = torch.zeros(module.n_components, dtype=torch.float64)
    try:
        with torch.no_grad():
            for rows in batch_slices(X.shape[0], dense_rows(X, EVAL_BATCH_SIZE)):
                x = to_tensor(X[rows], device)
                mean, log_var = module.encode(x, mask(x))
                total += gaussian_kl_terms(mean.double(), log_var.double()).sum(0).cpu()
    finally:
        module.train(training)
    total = group.sum(total)
    n_rows = group.sum([float(X.shape[0])])[0]
    kl = (total / n_rows).numpy()
    return {"kl_per_component_": kl, "active_components_": kl > ACTIVE_KL}


def check_unchanged(params, fitted):
    """A warm start or ``partial_fit`` continues the fitted network: the
    parameters ``fitted`` (name to value at the first fit) that fix its
    structure must have the same values in ``params``."""
    for name, value in fitted.items():
        current = getattr(params, name)
        if not _same(current, value):
            raise ValueError(
                f"{name} was changed from {value!r} to {current!r} after the model "
                f"was fitted; a warm start or partial_fit continues the fitted "
                f"network, whose {name} is fixed. Refit from scratch "
                "(warm_start=False) to use the new value."
            )


def _same(a, b):
    """Whether two parameter values are equal (sequences compared by items)."""
    try:
        if isinstance(a, (list, tuple, np.ndarray)) or isinstance(b, (list, tuple, np.ndarray)):
            return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
        if isinstance(a, functools.partial) and isinstance(b, functools.partial):
            # A partial has no equality of its own (a copy is never equal).
            return (_same(a.func, b.func) and _same(a.args, b.args)
                    and _same(a.keywords, b.keywords))
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


def _shard_summary(X):
    """What must agree across the ranks of a distributed fit: column names,
    dtypes and the number of rows (checked to be positive by validation)."""
    if is_dataframe(X):
        return (tuple(map(str, X.columns)), tuple(map(str, X.dtypes)), X.shape[0])
    return (X.shape[1], str(X.dtype), X.shape[0])


def report(result, max_iter, warn_unconverged, monitored=False):
    """Raise or warn for how training ended (``result``): divergence, an
    interrupt, or ``max_iter`` reached while still improving."""
    if result.diverged:
        raise TrainingDivergedError(
            f"Training diverged: the loss became NaN or infinite in epoch "
            f"{result.n_iter + 1}. The weights of the last finite epoch were kept. "
            "Try a lower learning_rate_init, max_grad_norm (e.g. 10), or scaling "
            "the data (e.g. StandardScaler)."
        )
    if result.interrupted:
        # The model is fitted (the best weights so far) and the program
        # stops, as it would on a Ctrl-C anywhere else: a search or a loop
        # of partial_fit calls does not go on.
        ranks = getattr(result, "interrupted_ranks", None)
        where = f" on rank {', '.join(map(str, ranks))}" if ranks else ""
        raise KeyboardInterrupt(
            f"Training was interrupted{where} after {result.n_iter} epochs; the "
            "estimator keeps the best weights so far and can be used."
        )
    if warn_unconverged and not (result.converged or result.stopped_by_hook):
        if monitored:
            advice = ("while the score of the held-out rows was still improving; "
                      "consider raising max_iter.")
        else:
            advice = ("while the training loss was still improving. A higher max_iter "
                      "trains further but can overfit a small table; "
                      "early_stopping=True stops when the score of held-out rows "
                      "stops improving.")
        warn(f"VAETransformer stopped at max_iter={max_iter} epochs {advice}",
             ConvergenceWarning)
