"""What a fit keeps when an error ends it, and memory errors that say what
could not be allocated (see :func:`out_of_memory`).

A ``fit`` or ``partial_fit`` that fails in validation or set-up leaves the
estimator as it was. One that fails once training has run (a callback's error,
a full disk while a callback saves a checkpoint) keeps whichever loses less:

* the weights training reached (those of its last complete epoch, or the best
  on the held-out rows with early stopping) when they count more epochs than
  the model the estimator held before the call (none, if it was not fitted);
  a warm start or ``partial_fit`` that completed an epoch always has more;
* otherwise the model held before the call, as it was.

The error is raised as it was, with a note (Python 3.11 and later; a warning
before) that says which was kept.
"""

import functools
import re
import sys

from ._warn import warn


def keep_reached(run, previous, error):
    """The attributes that make the estimator the model ``run`` trained up to
    ``error``, or None to restore ``previous`` (its ``__dict__`` before the
    call); either way ``error`` gets a note saying which."""
    result = run.reached
    if result is None or not isinstance(error, Exception):
        return None  # failed before training, or a Ctrl-C: undone as before
    earlier = run.history.n_iter if run.history is not None else 0
    trained = result.n_iter - earlier
    before = previous.get("n_iter_", 0) if "module_" in previous else 0
    kept = None
    if trained > 0 and result.n_iter > before:
        try:
            kept = run.reached_attributes()
        except Exception:  # out of memory again, say: restore the previous model
            kept = None
    _note(error, _message(kept is not None, result.n_iter, trained, before,
                          "module_" in previous))
    return kept


def _message(kept, n_iter, trained, before, fitted):
    epochs = f"{trained} epoch{'s' if trained != 1 else ''}"
    if kept:
        return (f"skvae: fit failed after training {epochs} in this call; the estimator "
                f"keeps the weights it reached (n_iter_={n_iter}; the best epoch's with "
                "early stopping) and is fitted.")
    if fitted:
        return (f"skvae: fit failed after training {epochs} in this call; the estimator "
                f"keeps the model it held before the call (n_iter_={before}), which had "
                "as many epochs or more.")
    return ("skvae: fit failed before an epoch was complete; the estimator is left "
            "unfitted.")


def _note(error, message):
    if sys.version_info >= (3, 11):
        error.add_note(message)
    else:
        warn(message, RuntimeWarning)


# ------------------------------------------------------------ out of memory

# How torch says it could not allocate: the CPU allocator's RuntimeError, a
# CUDA OutOfMemoryError, or (from some kernels) a SystemError with no message.
_ALLOCATION_FAILED = ("can't allocate memory", "out of memory", "error return without exception")


def out_of_memory(describe):
    """Decorate a method of :class:`~skvae._fitting.FitRun` so that running
    out of memory in it raises a :class:`MemoryError` saying what was being
    allocated: ``describe(run, *args)`` (as the method is called) tells what."""

    def decorate(method):
        @functools.wraps(method)
        def checked(run, *args, **kwargs):
            try:
                return method(run, *args, **kwargs)
            except (MemoryError, RuntimeError, SystemError) as exc:
                if not _allocation_failed(exc):
                    raise
                raise MemoryError(
                    f"Not enough memory for {describe(run, *args)}"
                    f"{_requested(exc)}. Use fewer or smaller hidden layers, a smaller "
                    "batch_size, float32 input or fewer rows (partial_fit streams "
                    f"chunks). ({type(exc).__name__}: {str(exc)[:200] or 'no message'})"
                ) from exc

        return checked

    return decorate


def _allocation_failed(exc):
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return any(part in text for part in _ALLOCATION_FAILED)


def _requested(exc):
    """`` (N GiB requested)`` where torch's message says how much."""
    match = re.search(r"allocate (\d+) bytes", str(exc))
    if match:
        return f" ({int(match.group(1)) / 2**30:.3g} GiB requested)"
    match = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]i?B)", str(exc))
    return f" ({match.group(1)} requested)" if match else ""


def network_size(run, raw, n_components):
    """What :meth:`~skvae._fitting.FitRun.build` allocates, in words."""
    return (f"the network's weights ({raw.shape[1]} columns, hidden layers "
            f"{tuple(run.params.hidden_layer_sizes)}, {n_components} latent dimensions)")


def data_size(run, raw, sample_weight=None):
    """What :meth:`~skvae._fitting.FitRun.prepare` allocates, in words."""
    return (f"the training data's copy ({raw.shape[0]} x {raw.shape[1]}) on {run.device} "
            "and the optimiser")


def training_size(run, hooks=()):
    """What :meth:`~skvae._fitting.FitRun.train` allocates, in words."""
    return ("training: the optimiser's state (two copies of the weights), a batch's "
            f"activations (batch_size={run.params.batch_size}) and gradients")
