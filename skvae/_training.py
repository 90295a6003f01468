"""The training loop: a plain function over a module, tensors and settings.

``train_module`` runs epochs (``run_epoch``), each a sequence of steps
(``train_step``), and returns a :class:`TrainingResult`. KL warm-up
(:func:`skvae._elbo.kl_weight`) and the plateau counter (:class:`Plateau`) are small
pure helpers. Nothing here imports scikit-learn.
"""

import copy
import math
import time
from dataclasses import dataclass, field

import torch

from ._data import batch_slices, batched
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
    return torch.optim.Adam(groups, lr=learning_rate_init)


def draw_noise(n_samples, n_rows, n_components, generator):
    """Standard normal reparameterisation noise from a private generator."""
    return torch.randn(
        (n_samples, n_rows, n_components), generator=generator, device=generator.device
    )


def train_step(module, optimizer, x, kl_weight, n_samples, generator, max_grad_norm):
    """One optimiser step on batch ``x``; returns the (detached) loss."""
    noise = draw_noise(n_samples, x.shape[0], module.n_components, generator)
    loss = module.elbo(x, noise, kl_weight).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
    optimizer.step()
    return loss.detach()


def run_epoch(module, optimizer, x, settings, kl_weight, generator):
    """One pass over ``x`` in a random order; returns the mean loss as a float.

    The per-batch losses are summed on the device and read once per epoch, so a
    GPU is not synchronised after every step.
    """
    module.train()
    n_rows = x.shape[0]
    order = torch.randperm(n_rows, generator=generator, device=generator.device)
    order = order.to(x.device)
    total = torch.zeros((), device=x.device)
    for rows in batch_slices(n_rows, settings.batch_size):
        batch = x[order[rows]]
        loss = train_step(
            module, optimizer, batch, kl_weight, settings.n_importance_samples,
            generator, settings.max_grad_norm,
        )
        total += loss * batch.shape[0]
    return (total / n_rows).item()


@torch.no_grad()
def mean_bound(module, x, noise):
    """Mean per-row bound on log p(x) over ``x`` with fixed ``noise``."""
    module.eval()
    bounds = batched(lambda rows: module.elbo(rows, noise).bound, x, EVAL_BATCH_SIZE)
    return bounds.mean().item()


def snapshot(module):
    """A detached copy of the module's state."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def train_module(module, optimizer, x_train, x_valid, settings, generator, history=None):
    """Train ``module`` on ``x_train`` for up to ``settings.max_iter`` epochs.

    Parameters
    ----------
    module : VAEModule
    optimizer : torch.optim.Optimizer
    x_train : Tensor
    x_valid : Tensor or None
        Held-out rows monitored for early stopping (when ``settings.early_stopping``).
    settings : TrainingSettings
    generator : torch.Generator
        Source of all randomness: shuffles and reparameterisation noise.
    history : TrainingResult or None
        The result of earlier training to continue (curves and epoch count).

    Returns
    -------
    TrainingResult
        The module holds the weights to keep: the best on the validation set with
        early stopping, the last good ones after an interrupt or a divergence, the
        final ones otherwise.
    """
    result = copy.deepcopy(history) if history is not None else TrainingResult()
    result.converged = result.interrupted = result.diverged = False
    monitor_valid = settings.early_stopping and x_valid is not None
    plateau = Plateau(settings.tol, settings.n_iter_no_change)
    scheduler = _make_scheduler(optimizer, settings)
    valid_noise = (
        draw_noise(settings.n_importance_samples, 1, module.n_components, generator)
        if monitor_valid
        else None
    )
    best_state = last_good = snapshot(module)
    progress = Progress(settings.verbose, settings.max_iter)
    start = time.perf_counter()
    try:
        for epoch in range(settings.max_iter):
            global_epoch = result.n_iter
            weight = kl_weight_at(global_epoch, settings.beta, settings.kl_warmup_epochs)
            loss = run_epoch(module, optimizer, x_train, settings, weight, generator)
            if not math.isfinite(loss):
                module.load_state_dict(last_good)
                result.diverged = True
                break
            last_good = snapshot(module)
            result.n_iter += 1
            result.loss_curve.append(loss)
            warming_up = global_epoch + 1 < settings.kl_warmup_epochs
            if monitor_valid:
                score = mean_bound(module, x_valid, valid_noise)
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
