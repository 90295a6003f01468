"""The training loop: a plain function over a module, tensors and settings.

``train_module`` runs epochs (``run_epoch``), each a sequence of steps
(``train_step``), and returns a :class:`TrainingResult`. KL warm-up
(:func:`skvae._elbo.kl_weight`) and the plateau counter (:class:`Plateau`) are small
pure helpers. Nothing here imports scikit-learn.
"""

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field

import torch

from ._data import batch_slices, gather_rows
from ._elbo import kl_weight as kl_weight_at
from ._progress import Progress

EVAL_BATCH_SIZE = 8192


@dataclass
class TrainingSettings:
    """How to train; mirrors the estimator's parameters."""

    max_iter: int = 100
    batch_size: int = 128
    beta: float = 1.0
    kl_warmup_epochs: int = 0
    n_importance_samples: int = 1
    tol: float = 1e-4
    n_iter_no_change: int = 10
    early_stopping: bool = False
    learning_rate: str = "constant"
    max_grad_norm: float = None
    mixed_precision: bool = False
    compile: bool = False
    chunk_rows: int = None
    verbose: int = 0


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


def draw_noise(n_samples, n_rows, n_components, generator):
    """Standard normal reparameterisation noise from a private generator."""
    return torch.randn(
        (n_samples, n_rows, n_components), generator=generator, device=generator.device
    )


def compiled_loss(module):
    """The training loss of ``module`` as a ``torch.compile``-d function
    ``(x, noise, kl_weight) -> loss``.

    Compiled once for every batch size (``dynamic=True``), so the last, smaller
    batch of an epoch does not trigger a second compilation. A failure to
    compile (no C++ compiler, say) is reported as a RuntimeError that says so.
    """
    compiled = torch.compile(lambda x, noise, weight: module.elbo(x, noise, weight).loss,
                             dynamic=True)

    compiled_once = False

    def loss(x, noise, kl_weight):
        nonlocal compiled_once
        if compiled_once:  # later errors are not compilation errors: pass them on
            return compiled(x, noise, kl_weight)
        try:
            out = compiled(x, noise, kl_weight)
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


def train_step(
    module, optimizer, x, kl_weight, n_samples, generator, max_grad_norm,
    mixed_precision=False, loss_fn=None,
):
    """One optimiser step on batch ``x``; returns the (detached) loss.

    With ``mixed_precision`` the networks run under bfloat16 autocast; the
    likelihood and KL terms are computed in float32 (see ``VAEModule.elbo``).
    ``loss_fn(x, noise, kl_weight)``, when given, replaces
    ``module.elbo(...).loss`` (a compiled version of it, say).
    """
    noise = draw_noise(n_samples, x.shape[0], module.n_components, generator)
    with autocast(x.device, mixed_precision):
        if loss_fn is None:
            loss = module.elbo(x, noise, kl_weight).loss
        else:
            loss = loss_fn(x, noise, kl_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
    optimizer.step()
    return loss.detach()


def epoch_batches(x, rows, batch_size, chunk_rows, generator):
    """The training batches of one epoch, in a fresh random order.

    ``rows`` (indices on ``x``'s device, or None for all rows of ``x``) are
    shuffled with ``generator`` and cut into batches of ``batch_size``. When ``x``
    is on the training device (``chunk_rows`` None) each batch is gathered there;
    otherwise ``chunk_rows`` rows at a time (a multiple of ``batch_size``) are
    gathered on the host and sent over in one copy. The batches are the same
    either way.
    """
    device = generator.device
    n_rows = x.shape[0] if rows is None else rows.shape[0]
    # On the host this is one device-to-host copy per epoch; otherwise a no-op.
    order = torch.randperm(n_rows, generator=generator, device=device).to(x.device)
    if rows is not None:
        order = rows[order]
    if chunk_rows is None:
        for part in batch_slices(n_rows, batch_size):
            yield x[order[part]]
        return
    for start in range(0, n_rows, chunk_rows):
        chunk = gather_rows(x, order[start : start + chunk_rows], device)
        for part in batch_slices(chunk.shape[0], batch_size):
            yield chunk[part]


def run_epoch(module, optimizer, x, settings, kl_weight, generator, rows=None, loss_fn=None):
    """One pass over the rows ``rows`` of ``x`` (all when None) in a random order.

    Returns the mean loss as a 0-d tensor on the training device: the per-batch
    losses stay there and are combined once, so a GPU is never synchronised
    inside the epoch.
    """
    module.train()
    if loss_fn is not None:
        # A tensor, so that a changing KL weight (warm-up) does not recompile.
        # (torch.full, unlike torch.tensor, does not wait for the device.)
        kl_weight = torch.full((), float(kl_weight), device=generator.device)
    losses, sizes = [], []
    for batch in epoch_batches(x, rows, settings.batch_size, settings.chunk_rows, generator):
        losses.append(
            train_step(
                module, optimizer, batch, kl_weight, settings.n_importance_samples,
                generator, settings.max_grad_norm, settings.mixed_precision, loss_fn,
            )
        )
        sizes.append(batch.shape[0])
    # Every batch but the last has ``sizes[0]`` rows; Python-number weights need
    # no host-to-device copy.
    total = losses[-1] * sizes[-1]
    if len(losses) > 1:
        total = total + torch.stack(losses[:-1]).sum() * sizes[0]
    return total / sum(sizes)


@torch.no_grad()
def mean_bound(module, x, noise, rows=None):
    """Mean per-row bound on log p(x) over the rows ``rows`` of ``x`` (all when
    None) with fixed ``noise``, in batches of ``EVAL_BATCH_SIZE`` rows."""
    module.eval()
    device = noise.device
    n_rows = x.shape[0] if rows is None else rows.shape[0]
    total = torch.zeros((), dtype=torch.float64, device=device)
    for part in batch_slices(n_rows, EVAL_BATCH_SIZE):
        if rows is None:
            batch = x[part].to(device)
        else:
            batch = gather_rows(x, rows[part], device)
        total += module.elbo(batch, noise).bound.sum(dtype=torch.float64)
    return total.item() / n_rows


def snapshot(module):
    """A detached copy of the module's state."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def train_module(
    module, optimizer, x, settings, generator, history=None, train_rows=None, valid_rows=None
):
    """Train ``module`` on rows of ``x`` for up to ``settings.max_iter`` epochs.

    Parameters
    ----------
    module : VAEModule
        On the training device (``generator.device``).
    optimizer : torch.optim.Optimizer
    x : Tensor
        The data: on the training device, or on the host when
        ``settings.chunk_rows`` is set (then sent over in chunks).
    settings : TrainingSettings
    generator : torch.Generator
        Source of all randomness: shuffles and reparameterisation noise.
    history : TrainingResult or None
        The result of earlier training to continue (curves and epoch count).
    train_rows, valid_rows : Tensor of int or None
        Indices, on ``x``'s device, of the rows to train on (all when None) and of
        the held-out rows monitored for early stopping (when
        ``settings.early_stopping``).

    Returns
    -------
    TrainingResult
        The module holds the weights to keep: the best on the validation set with
        early stopping, the last good ones after an interrupt or a divergence, the
        final ones otherwise.
    """
    result = copy.deepcopy(history) if history is not None else TrainingResult()
    result.converged = result.interrupted = result.diverged = False
    monitor_valid = settings.early_stopping and valid_rows is not None
    plateau = Plateau(settings.tol, settings.n_iter_no_change)
    scheduler = _make_scheduler(optimizer, settings)
    valid_noise = (
        draw_noise(settings.n_importance_samples, 1, module.n_components, generator)
        if monitor_valid
        else None
    )
    best_state = last_good = snapshot(module)
    loss_fn = compiled_loss(module) if settings.compile else None
    progress = Progress(settings.verbose, settings.max_iter)
    start = time.perf_counter()
    try:
        for epoch in range(settings.max_iter):
            global_epoch = result.n_iter
            weight = kl_weight_at(global_epoch, settings.beta, settings.kl_warmup_epochs)
            loss = run_epoch(
                module, optimizer, x, settings, weight, generator, train_rows, loss_fn
            ).item()
            if not math.isfinite(loss):
                module.load_state_dict(last_good)
                result.diverged = True
                break
            last_good = snapshot(module)
            result.n_iter += 1
            result.loss_curve.append(loss)
            warming_up = global_epoch + 1 < settings.kl_warmup_epochs
            if monitor_valid:
                score = mean_bound(module, x, valid_noise, valid_rows)
                result.validation_scores.append(score)
                if score > result.best_validation_score:
                    result.best_validation_score = score
                    best_state = last_good
            else:
                score = -loss
            result.best_loss = min(result.best_loss, loss)
            progress.update(epoch, loss, score if monitor_valid else None, start)
            if warming_up:
                continue
            plateau.update(score)
            if scheduler is not None:
                scheduler.step(score)
            if plateau.stalled:
                result.converged = True
                break
    except KeyboardInterrupt:
        module.load_state_dict(best_state if monitor_valid else last_good)
        result.interrupted = True
    finally:
        progress.close()
    if monitor_valid and not result.diverged and not result.interrupted:
        module.load_state_dict(best_state)
    return result


def _make_scheduler(optimizer, settings):
    if settings.learning_rate != "adaptive":
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=0.2,
        patience=max(1, settings.n_iter_no_change // 2),
        threshold=settings.tol,
        threshold_mode="abs",
    )
