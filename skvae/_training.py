"""The training loop: a plain function over a module, its data, an objective and settings.

``train_module`` runs epochs (``run_epoch``), each a sequence of steps
(``train_step``), and returns a :class:`TrainingResult`. What is optimised is one
value (:class:`skvae._elbo.Objective`); where the data are and how they reach the
device is another (:class:`TrainingData`); how to optimise a third
(:class:`TrainingSettings`). Code that watches or steers training is a *hook*:
an object with any of the methods

* ``on_train_begin(max_iter)``,
* ``on_epoch_begin(epoch)``,
* ``on_epoch_end(record) -> bool`` (an :class:`EpochRecord`; True stops
  training after this epoch),
* ``on_train_end(result)``.

Progress output (:mod:`skvae._progress`) is one; the estimator adapts
scikit-learn's callbacks into another. Nothing here imports scikit-learn.

Under a distributed collective the ranks decide together
(:class:`skvae._distributed.Agreement`): a Ctrl-C, a hook's request to stop,
or an error (a hook's, or a step's) on one rank is recorded there and acted on
by every rank at the same step or epoch boundary, with no rank left waiting in
a collective operation.
"""

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field

import torch

from ._data import batch_slices, eval_rows, gather_rows
from ._distributed import ERROR, INTERRUPT, SINGLE, STOP, Agreement
from ._elbo import Objective
from ._likelihoods import observed_mask


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite.

    The estimator is left fitted with the weights of the last epoch whose loss
    was finite, so it can still be inspected or used.
    """


@dataclass
class TrainingSettings:
    """How to optimise; mirrors the estimator's parameters."""

    max_iter: int = 100
    batch_size: int = 128
    tol: float = 1e-4
    n_iter_no_change: int = 10
    learning_rate: str = "constant"
    max_grad_norm: float = None
    mixed_precision: bool = False
    compile: bool = False
    validation_samples: int = 1


@dataclass
class TrainingData:
    """Where the training rows are and how they reach the training device.

    Attributes
    ----------
    x : Tensor
        The data: on ``device``, or on the host when ``chunk_rows`` is set (then
        sent over ``chunk_rows`` rows at a time).
    device : torch.device
        Where training runs.
    train_rows, valid_rows : Tensor of int or None
        Indices, on ``x``'s device, of the rows to train on (all when None) and
        of the held-out rows whose bound is monitored (None: no monitoring).
    chunk_rows : int or None
        Rows per host-to-device copy when ``x`` stays on the host.
    collective : skvae._distributed.Collective
        The processes training together, each on its own shard of rows
        (:data:`~skvae._distributed.SINGLE`: this process alone).
    steps : int or None
        Batches per epoch, the same on every rank: a rank whose shard gives
        fewer goes round it again in a fresh order (None: as many as the rows give).
    missing : bool
        Whether some entries are missing (NaN): then each batch's mask of
        observed entries (:meth:`mask`) goes to the objective. This is the one
        place a fit decides it.
    sample_weight : Tensor or None
        One weight per row of ``x`` (``sample_weight``, scaled to mean 1 over
        the training rows of all ranks), on ``x``'s device; None: unweighted.
    """

    x: torch.Tensor
    device: torch.device
    train_rows: torch.Tensor = None
    valid_rows: torch.Tensor = None
    chunk_rows: int = None
    collective: object = SINGLE
    steps: int = None
    missing: bool = False
    sample_weight: torch.Tensor = None
    agreement: object = None

    def mask(self, x):
        """The mask of observed entries of batch ``x`` when the data have
        missing entries (NaN); None otherwise, so complete data pay nothing."""
        return observed_mask(self.missing)(x)

    @property
    def monitored(self):
        return self.valid_rows is not None


# Early stopping scores at most VALIDATION_ROWS of the held-out rows per epoch
# (a fixed random sample), so that on a large data set the validation pass, at
# ``validation_samples`` decoder passes per row, stays a small share of an epoch.
VALIDATION_ROWS = 2048


def validation_sample(rows, generator):
    """At most ``VALIDATION_ROWS`` of the held-out ``rows``, drawn once with
    ``generator`` and kept in their original order; ``rows`` itself (drawing
    nothing) when there are no more than that."""
    if rows is None or rows.shape[0] <= VALIDATION_ROWS:
        return rows
    pick = torch.randperm(rows.shape[0], generator=generator, device=generator.device)
    return rows[pick[:VALIDATION_ROWS].sort().values.to(rows.device)]


@dataclass
class TrainingResult:
    """What training reports; curves include those of earlier calls it continued."""

    loss_curve: list = field(default_factory=list)
    validation_scores: list = field(default_factory=list)
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    n_iter: int = 0
    converged: bool = False
    interrupted: bool = False
    diverged: bool = False
    stopped_by_hook: bool = False
    interrupted_ranks: list = field(default_factory=list)


@dataclass(frozen=True)
class EpochRecord:
    """What a hook's ``on_epoch_end`` sees after an epoch.

    Attributes
    ----------
    epoch : int
        Epochs run so far, counting earlier calls that this one continues.
    epoch_in_call : int
        0-based index of the epoch within this call.
    loss : float
        Mean training loss of the epoch (negative objective, nats per row).
    validation_score : float or None
        Mean held-out bound, when monitored.
    elapsed : float
        Seconds since this call's training began.
    module : VAEModule
        The module as trained so far (on the training device; do not modify).
    result : TrainingResult
        The curves so far (do not modify).
    """

    epoch: int
    epoch_in_call: int
    loss: float
    validation_score: float
    elapsed: float
    module: torch.nn.Module
    result: TrainingResult


# batch_size="auto": about AUTO_BATCH_STEPS steps per epoch, in batches of
# AUTO_BATCH_MIN to AUTO_BATCH_MAX rows.
AUTO_BATCH_STEPS = 4
AUTO_BATCH_MIN = 32
AUTO_BATCH_MAX = 512


def auto_batch_size(n_rows):
    """The batch size of ``batch_size="auto"`` for ``n_rows`` training rows:
    ``n_rows / AUTO_BATCH_STEPS`` rounded up, within ``[AUTO_BATCH_MIN,
    AUTO_BATCH_MAX]``, and never more than ``n_rows``.

    >>> auto_batch_size(100), auto_batch_size(1347), auto_batch_size(60000), auto_batch_size(10)
    (32, 337, 512, 10)
    """
    size = min(AUTO_BATCH_MAX, max(AUTO_BATCH_MIN, -(-n_rows // AUTO_BATCH_STEPS)))
    return max(1, min(size, n_rows))


# learning_rate_init="auto": AUTO_LEARNING_RATE for batches of AUTO_BATCH_MIN
# rows, scaled with the square root of the batch size.
AUTO_LEARNING_RATE = 1e-3


def auto_learning_rate(batch_size):
    """The learning rate of ``learning_rate_init="auto"`` for batches of
    ``batch_size`` rows: ``AUTO_LEARNING_RATE * sqrt(batch_size / AUTO_BATCH_MIN)``,
    the square-root scaling rule for Adam (Malladi et al., 2022).

    >>> [round(auto_learning_rate(b), 5) for b in (32, 128, 512)]
    [0.001, 0.002, 0.004]
    """
    return AUTO_LEARNING_RATE * math.sqrt(batch_size / AUTO_BATCH_MIN)


# The least patience, in optimiser steps: ``n_iter_no_change`` epochs of a small
# table are a handful of steps, too few to tell a plateau from the noise of
# single steps (see :func:`patience_epochs`).
MIN_PATIENCE_STEPS = 200


def steps_per_epoch(data, batch_size):
    """Optimiser steps in one epoch over the training rows of ``data``."""
    if data.steps is not None:
        return data.steps
    n_rows = data.x.shape[0] if data.train_rows is None else data.train_rows.shape[0]
    return max(1, -(-n_rows // batch_size))


def patience_epochs(n_iter_no_change, steps):
    """Epochs without improvement before training stops: ``n_iter_no_change``,
    or as many epochs as make ``MIN_PATIENCE_STEPS`` optimiser steps of
    ``steps`` per epoch, whichever is more.

    >>> patience_epochs(10, 11), patience_epochs(10, 2), patience_epochs(10, 100)
    (19, 100, 10)
    """
    return max(n_iter_no_change, -(-MIN_PATIENCE_STEPS // steps))


class Plateau:
    """Counts epochs whose score fails to beat the best by more than ``tol``.

    The rule of scikit-learn's MLP: an epoch counts as no improvement when its
    score is not above ``best + tol``; the best is updated on any improvement.
    """

    def __init__(self, tol, patience, best=-math.inf):
        self.tol = tol
        self.patience = patience
        self.best = best
        self.count = 0

    def update(self, score):
        """Record ``score``; return True when it is a new best."""
        self.count = self.count + 1 if score <= self.best + self.tol else 0
        improved = score > self.best
        if improved:
            self.best = score
        return improved

    @property
    def stalled(self):
        return self.count >= self.patience


LIKELIHOOD_LR_FACTOR = 10.0


def make_optimizer(module, learning_rate_init, alpha):
    """Adam over all parameters, with L2 penalty ``alpha`` on the networks.

    The likelihood's own parameters (a variance per feature, say) learn
    ``LIKELIHOOD_LR_FACTOR`` times faster: Adam moves each parameter by about
    the learning rate per step, and a log-variance has to travel several units
    from its start at the data's variance, which at the networks' rate takes
    thousands of steps and meanwhile lets the KL term switch latent dimensions off.
    """
    own = list(module.observation.parameters())
    own_ids = {id(p) for p in own}
    networks = [p for p in module.parameters() if id(p) not in own_ids]
    groups = [{"params": networks, "weight_decay": alpha}]
    if own:
        groups.append(
            {"params": own, "lr": learning_rate_init * LIKELIHOOD_LR_FACTOR, "weight_decay": 0.0}
        )
    try:
        # One fused kernel per step instead of a handful per parameter tensor:
        # about 1.2x faster steps on a CPU (benchmarks/bench_speed.py).
        return torch.optim.Adam(groups, lr=learning_rate_init, fused=True)
    except (RuntimeError, ValueError):  # a torch without fused Adam for these tensors
        return torch.optim.Adam(groups, lr=learning_rate_init)


def update_optimizer(optimizer, learning_rate_init, alpha):
    """Give an optimiser from :func:`make_optimizer` new settings (for a warm
    start after ``set_params``), keeping its state."""
    optimizer.param_groups[0].update(lr=learning_rate_init, weight_decay=alpha)
    for group in optimizer.param_groups[1:]:
        group["lr"] = learning_rate_init * LIKELIHOOD_LR_FACTOR


def move_optimizer_state(optimizer, device):
    """Move the optimiser's state tensors to ``device``, as its parameters were.

    Plain Adam keeps its step counter on the CPU; fused (and capturable) Adam
    keeps it next to the parameters.
    """
    for group in optimizer.param_groups:
        step_moves = bool(group.get("fused") or group.get("capturable"))
        for parameter in group["params"]:
            for key, value in optimizer.state.get(parameter, {}).items():
                if torch.is_tensor(value) and (key != "step" or step_moves):
                    optimizer.state[parameter][key] = value.to(device)


def autocast(device, enabled):
    """bfloat16 autocast on ``device`` when ``enabled``; a no-op context otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def compiled_loss(module, objective, mask):
    """The training loss of ``module`` under ``objective`` as a
    ``torch.compile``-d function ``(x, noise, kl_weight, sample_weight) -> loss``;
    ``mask(x)`` gives a batch's mask of observed entries (or None).

    Compiled once for every batch size (``dynamic=True``), so the last, smaller
    batch of an epoch does not trigger a second compilation. A failure to
    compile (no C++ compiler, say) is reported as a RuntimeError that says so.
    """
    compiled = torch.compile(
        lambda x, noise, kl_weight, sample_weight: objective(
            module, x, noise, kl_weight, mask(x), sample_weight
        ).loss,
        dynamic=True,
    )
    compiled_once = False

    def loss(x, noise, kl_weight, sample_weight=None):
        nonlocal compiled_once
        if compiled_once:  # later errors are not compilation errors: pass them on
            return compiled(x, noise, kl_weight, sample_weight)
        try:
            out = compiled(x, noise, kl_weight, sample_weight)
        except Exception as exc:  # torch's compiler errors have no common base
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise RuntimeError(
                "compile=True: torch.compile could not compile the training step "
                f"({type(exc).__name__}: {first_line}). It needs a working C++ "
                "compiler on the CPU (Triton on a GPU); use compile=False."
            ) from exc
        compiled_once = True
        return out

    return loss


def train_step(module, optimizer, x, noise, kl_weight, settings, loss_fn, sample_weight=None):
    """One optimiser step on batch ``x``; returns the (detached) loss.

    ``loss_fn(x, noise, kl_weight, sample_weight)`` is the objective's loss
    (compiled, maybe); ``sample_weight`` holds the batch rows' weights or None.
    With ``settings.mixed_precision`` the networks run under bfloat16 autocast;
    the likelihood and KL terms are computed in float32 (see
    :meth:`skvae._modules.VAEModule.encode`).
    """
    with autocast(x.device, settings.mixed_precision):
        loss = loss_fn(x, noise, kl_weight, sample_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if settings.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(module.parameters(), settings.max_grad_norm)
    optimizer.step()
    return loss.detach()


def epoch_batches(data, batch_size, generator):
    """The training batches of one epoch, in a fresh random order.

    ``data.train_rows`` (all rows when None) are shuffled with ``generator``
    and cut into batches of ``batch_size``. When ``data.x`` is on the training
    device each batch is gathered there; otherwise ``data.chunk_rows`` rows at a
    time (a multiple of ``batch_size``) are gathered on the host and sent over
    in one copy. The batches are the same either way. Yields ``(rows,
    sample_weight)``, the weights of those rows (None without
    ``data.sample_weight``).
    """
    x, rows = data.x, data.train_rows
    n_rows = x.shape[0] if rows is None else rows.shape[0]
    order = torch.randperm(n_rows, generator=generator, device=data.device)
    if data.steps is not None and data.steps * batch_size > n_rows:
        # A smaller shard than another rank's goes round again in fresh orders,
        # so that every rank takes the same number of steps.
        passes = [order]
        needed = data.steps * batch_size - n_rows
        while needed > 0:
            more = torch.randperm(n_rows, generator=generator, device=data.device)[:needed]
            passes.append(more)
            needed -= more.shape[0]
        order = torch.cat(passes)
        n_rows = order.shape[0]
    # On the host this is one device-to-host copy per epoch; otherwise a no-op.
    order = order.to(x.device)
    if rows is not None:
        order = rows[order]
    sample_weight = data.sample_weight

    def weights_of(index):
        return None if sample_weight is None else sample_weight[index.to(sample_weight.device)]

    if data.chunk_rows is None:
        for part in batch_slices(n_rows, batch_size):
            yield x[order[part]], weights_of(order[part])
        return
    for start in range(0, n_rows, data.chunk_rows):
        index = order[start : start + data.chunk_rows]
        chunk = gather_rows(x, index, data.device)
        chunk_weights = weights_of(index)
        for part in batch_slices(chunk.shape[0], batch_size):
            yield chunk[part], None if chunk_weights is None else chunk_weights[part]


LOSS_SLOTS = 1024


def run_epoch(module, optimizer, data, objective, settings, kl_weight, generator,
              loss_fn, steps=None):
    """One pass over the training rows of ``data`` in a random order.

    Returns the mean loss as a 0-d tensor on the training device: the per-batch
    losses stay there and are combined once, so a GPU is never synchronised
    inside the epoch. Under a distributed collective ``steps`` (a
    :class:`GuardedSteps`) takes each step; None is returned when the ranks
    agree to stop after one.
    """
    module.train()
    # The batches' losses are copied into slots of one tensor rather than kept as
    # tensors of their own: tens of thousands of live scalars, each pinning the
    # heap page it was allocated on, held hundreds of MiB on long epochs.
    slots = torch.empty(LOSS_SLOTS, device=data.device)
    folded, used, sizes = None, 0, []
    for batch, sample_weight in epoch_batches(data, settings.batch_size, generator):
        if used == LOSS_SLOTS:  # full batches only: the last one is still to come
            folded = slots.sum() if folded is None else folded + slots.sum()
            used = 0
        noise = objective.draw_noise(batch.shape[0], module.n_components, generator)
        step = train_step if steps is None else steps.step
        slots[used] = step(module, optimizer, batch, noise, kl_weight, settings, loss_fn,
                           sample_weight)
        used += 1
        sizes.append(batch.shape[0])
        if steps is not None and steps.agreement.settle_step():
            return None
    # Every batch but the last has ``sizes[0]`` rows; Python-number weights need
    # no host-to-device copy.
    total = slots[used - 1] * sizes[-1]
    full = slots[: used - 1].sum() if folded is None else folded + slots[: used - 1].sum()
    if len(sizes) > 1:
        total = total + full * sizes[0]
    return total / sum(sizes)


def mean_bound(module, objective, data, noise, rows=None, agreement=None):
    """Mean per-row bound on log p(x) over the rows ``rows`` of ``data.x`` (all
    when None) with fixed ``noise``, in batches of at most ``EVAL_BATCH_SIZE``
    rows (fewer for wide rows), masked as ``data`` says; over every rank's rows under a distributed
    ``data.collective``; weighted by ``data.sample_weight`` when given.

    With an ``agreement`` (:class:`~skvae._distributed.Agreement`), the ranks
    agree on their statuses in the same all-reduce, this rank's scoring guarded
    by it: None when they agree to stop."""
    if agreement is None:
        total, n_rows = data.collective.sum(bound_total(module, objective, data, noise, rows))
        return total / n_rows
    local = agreement.guard(bound_total, module, objective, data, noise, rows,
                            default=(0.0, 0.0))
    total, n_rows = agreement.agree(local)
    return None if agreement.decided else total / n_rows


@torch.no_grad()
def bound_total(module, objective, data, noise, rows=None):
    """The sum of the bound over this process's rows of :func:`mean_bound`,
    and their number (or total weight)."""
    module.eval()
    x, sample_weight = data.x, data.sample_weight
    device = noise.device
    n_rows = x.shape[0] if rows is None else rows.shape[0]
    total = torch.zeros((), dtype=torch.float64, device=device)
    # Each row is decoded once per importance sample: as many decoder rows per
    # batch as ``score_samples`` uses.
    for part in batch_slices(n_rows, eval_rows(objective.n_samples, x.shape[1])):
        if rows is None:
            batch = x[part].to(device)
        else:
            batch = gather_rows(x, rows[part], device)
        bound = objective(module, batch, noise, mask=data.mask(batch)).bound.to(torch.float64)
        if sample_weight is not None:
            index = torch.arange(part.start, part.stop) if rows is None else rows[part]
            index = index.to(sample_weight.device)
            bound = bound * sample_weight[index].to(device, torch.float64)
        total += bound.sum()
    if sample_weight is not None:
        picked = sample_weight if rows is None else sample_weight[rows.to(sample_weight.device)]
        n_rows = float(picked.sum(dtype=torch.float64))
    return [total.item(), float(n_rows)]


def snapshot(module):
    """A detached copy of the module's state."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _clone_state(state):
    return {
        parameter: {key: value.clone() if torch.is_tensor(value) else value
                    for key, value in entries.items()}
        for parameter, entries in state.items()
    }


def optimizer_snapshot(optimizer):
    """A copy of the optimiser's per-parameter state (Adam's moments and step
    counts) and learning rates: cloned tensors, about 10x cheaper per epoch
    than a deep copy of its ``state_dict``."""
    return _clone_state(optimizer.state), [group["lr"] for group in optimizer.param_groups]


def restore_optimizer(optimizer, saved):
    """Put back a state from :func:`optimizer_snapshot` (copied again, so that
    ``saved`` can be restored more than once)."""
    state, rates = saved
    optimizer.state.clear()
    optimizer.state.update(_clone_state(state))
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = rate


class Loss(torch.nn.Module):
    """The training loss as a module: ``forward(x, noise, kl_weight,
    sample_weight) -> loss``; ``mask(x)`` gives a batch's mask (or None)."""

    def __init__(self, module, objective, mask):
        super().__init__()
        self.module = module
        self.objective = objective
        self.mask = mask

    def forward(self, x, noise, kl_weight, sample_weight=None, zero=False):
        if zero:  # a zero loss through every parameter: zero gradients
            return sum(p.sum() for p in self.module.parameters()) * 0.0
        return self.objective(self.module, x, noise, kl_weight, self.mask(x),
                              sample_weight).loss


class GuardedSteps:
    """The training steps of one rank of a distributed fit, whose errors and
    interrupts go to ``agreement`` (a :class:`~skvae._distributed.Agreement`)
    rather than up the stack, so that the rank still makes the step's
    collective operations: a batch whose loss fails gives a zero loss (zero
    gradients) for DDP's all-reduce, where this rank's status travels too."""

    def __init__(self, agreement):
        self.agreement = agreement

    def loss(self, loss_fn):
        """``loss_fn`` (the DDP-wrapped :class:`Loss`) with its failures recorded."""

        def guarded(x, noise, kl_weight, sample_weight=None):
            try:
                return loss_fn(x, noise, kl_weight, sample_weight)
            except KeyboardInterrupt:
                self.agreement.record(INTERRUPT)
            except Exception as exc:  # any: the other ranks wait in the all-reduce
                self.agreement.record(ERROR, exc)
            return loss_fn(x, noise, kl_weight, sample_weight, zero=True)

        return guarded

    def step(self, module, optimizer, x, *args):
        """:func:`train_step`, its failures after the gradients' all-reduce recorded."""
        return self.agreement.guard(train_step, module, optimizer, x, *args,
                                    default=torch.zeros((), device=x.device))


class _Hooks:
    """Calls the methods that each hook has (see the module's docstring)."""

    def __init__(self, hooks):
        self.hooks = list(hooks)

    def call(self, method, *args):
        stop = False
        for hook in self.hooks:
            function = getattr(hook, method, None)
            if function is not None:
                stop = bool(function(*args)) or stop
        return stop


class _Run:
    """The state of one call of :func:`train_module`: the weights to fall back
    on, the plateau counter, the learning-rate schedule, the loss function."""

    def __init__(self, module, optimizer, data, objective, settings, generator, result):
        self.module, self.optimizer, self.data = module, optimizer, data
        self.objective, self.settings, self.generator = objective, settings, generator
        self.result = result
        self.patience = patience_epochs(settings.n_iter_no_change,
                                        steps_per_epoch(data, settings.batch_size))
        self.plateau = Plateau(settings.tol, self.patience)
        self.scheduler = _make_scheduler(optimizer, settings, self.patience)
        # The held-out rows are scored as ``score`` scores them: the
        # importance-weighted bound with ``validation_samples`` samples (the
        # single-sample ELBO can stall while that bound still improves).
        self.valid_objective = Objective(
            n_samples=max(settings.validation_samples, objective.n_samples))
        self.valid_noise = (
            self.valid_objective.draw_noise(1, module.n_components, generator)
            if data.monitored else None
        )
        self.valid_rows = validation_sample(data.valid_rows, generator)
        self.best_state = self.last_good = snapshot(module)
        # The optimiser's state goes back with the weights after a divergence:
        # moments holding NaN would make every later step diverge too.
        self.last_optimizer = optimizer_snapshot(optimizer)
        self.agreement = data.agreement or Agreement(data.collective)
        self.steps = None
        if settings.compile:
            self.loss_fn = compiled_loss(module, objective, data.mask)
        elif data.collective.distributed:
            # Through a module's forward, which DDP needs to average gradients.
            self.steps = GuardedSteps(self.agreement)
            self.loss_fn = self.steps.loss(data.collective.wrap(
                Loss(module, objective, data.mask), data.device, self.agreement))
        else:
            self.loss_fn = lambda x, noise, kl_weight, sample_weight=None: objective(
                module, x, noise, kl_weight, data.mask(x), sample_weight
            ).loss

    def kl_weight(self, epoch):
        weight = self.objective.kl_weight(epoch)
        if self.settings.compile:
            # A tensor, so that a changing KL weight (warm-up) does not recompile.
            # (torch.full, unlike torch.tensor, does not wait for the device.)
            return torch.full((), weight, device=self.data.device)
        return weight

    def epoch(self):
        """Train one epoch and record it; returns its loss and validation score,
        or None when the loss was not finite (the last good weights are back)
        or the ranks agreed to stop (``self.agreement.decided``)."""
        result, epoch = self.result, self.result.n_iter
        loss = run_epoch(
            self.module, self.optimizer, self.data, self.objective, self.settings,
            self.kl_weight(epoch), self.generator, self.loss_fn, self.steps,
        )
        collective, agreement = self.data.collective, self.agreement
        if loss is None:  # the ranks agreed to stop in the epoch
            return None
        loss = loss.item()
        if collective.distributed:  # every rank decides on the same numbers
            loss = agreement.agree([loss])[0] / collective.world_size
            if agreement.decided:
                return None
        if not math.isfinite(loss):
            self.restore_last_good()
            result.diverged = True
            return None
        score = None
        if self.data.monitored:  # scored before the epoch counts: an interrupt undoes it
            extra = {"agreement": agreement} if collective.distributed else {}
            score = mean_bound(self.module, self.valid_objective, self.data, self.valid_noise,
                               self.valid_rows, **extra)
            if score is None:
                return None
        self.last_good = snapshot(self.module)
        self.last_optimizer = optimizer_snapshot(self.optimizer)
        result.n_iter += 1
        result.loss_curve.append(loss)
        result.best_loss = min(result.best_loss, loss)
        if self.data.monitored:
            result.validation_scores.append(score)
            if score > result.best_validation_score:
                result.best_validation_score = score
                self.best_state = self.last_good
        return loss, score

    def stalled(self, epoch, loss, score):
        """Update the plateau counter and schedule; True when training has converged."""
        if self.objective.warming_up(epoch):
            return False
        monitored = -loss if score is None else score
        self.plateau.update(monitored)
        if self.scheduler is not None:
            self.scheduler.step(monitored)
        return self.plateau.stalled

    def restore_last_good(self):
        """Back to the weights and optimiser state of the last finite epoch."""
        self.module.load_state_dict(self.last_good)
        restore_optimizer(self.optimizer, self.last_optimizer)

    def finish(self, failed=False):
        """Leave the module with the weights to keep (``failed``: training was
        cut short by an error, which the weights of its last epoch outlive)."""
        result = self.result
        if result.interrupted or failed:
            # An epoch cut short: its steps are undone with the optimiser's.
            self.restore_last_good()
            if self.data.monitored:
                self.module.load_state_dict(self.best_state)
        elif self.data.monitored and not result.diverged:
            self.module.load_state_dict(self.best_state)


def train_module(module, optimizer, data, objective, settings, generator, history=None,
                 hooks=()):
    """Train ``module`` on ``data`` for up to ``settings.max_iter`` epochs.

    ``module`` is on ``data.device``; ``generator`` (on that device too) is the
    source of all randomness (shuffles, reparameterisation noise); ``history``
    is the result of earlier training to continue (curves and epoch count), and
    ``hooks`` watch or stop training (see the module's docstring).

    Returns a :class:`TrainingResult`; the module then holds the weights to
    keep: the best on the held-out rows when they are monitored, the last good
    ones after an interrupt or a divergence, the final ones otherwise. An
    error (a hook's, say) propagates with the module holding the weights of
    the last complete epoch (or the best); the hooks' ``on_train_end`` sees the
    result so far.
    """
    result = copy.deepcopy(history) if history is not None else TrainingResult()
    result.converged = result.interrupted = result.diverged = False
    result.stopped_by_hook = False
    result.interrupted_ranks = []
    run = _Run(module, optimizer, data, objective, settings, generator, result)
    hooks = _Hooks(hooks)
    agreement = run.agreement
    agreement.guard(hooks.call, "on_train_begin", settings.max_iter)
    try:
        _epochs(run, hooks)
    except KeyboardInterrupt:
        result.interrupted = True
    except Exception:  # a hook's, say: the caller decides what to keep
        run.finish(failed=True)
        raise
    finally:
        agreement.guard(hooks.call, "on_train_end", result)
    if data.collective.distributed:  # what happened since the last boundary
        agreement.agree()
        _act_on_agreement(run)
    run.finish()
    return result


def _epochs(run, hooks):
    """The epochs of :func:`train_module`, until ``run``'s settings, the
    plateau rule, a hook, or the ranks' agreement ends them."""
    result, agreement = run.result, run.agreement
    start = time.perf_counter()
    for epoch_in_call in range(run.settings.max_iter):
        epoch = result.n_iter
        agreement.guard(hooks.call, "on_epoch_begin", epoch)
        outcome = run.epoch()
        if outcome is None:
            break
        record = EpochRecord(result.n_iter, epoch_in_call, *outcome,
                             time.perf_counter() - start, run.module, result)
        if agreement.guard(hooks.call, "on_epoch_end", record):
            agreement.record(STOP)
        agreement.agree()
        result.stopped_by_hook = agreement.decided == STOP
        if agreement.decided > STOP:
            break
        if run.stalled(epoch, *outcome):
            result.converged = True
        if result.converged or result.stopped_by_hook:
            break
    _act_on_agreement(run)


def _act_on_agreement(run):
    """Every rank does what the ranks agreed: raise the error of one of them,
    or end as interrupted (the ranks that were named in the result)."""
    agreement, result = run.agreement, run.result
    if agreement.decided == ERROR:
        agreement.raise_error()
    if agreement.decided == INTERRUPT:
        result.interrupted = True
        result.interrupted_ranks = list(agreement.ranks)


def _make_scheduler(optimizer, settings, patience):
    """For ``learning_rate="adaptive"``: divide the learning rate by 5 after half
    the patience (``patience`` epochs) without improvement."""
    if settings.learning_rate != "adaptive":
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=0.2,
        patience=max(1, patience // 2),
        threshold=settings.tol,
        threshold_mode="abs",
    )
