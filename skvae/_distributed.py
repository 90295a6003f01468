"""Training across processes: the collective operations the training needs.

Distribution is a property of the training context, not of the model. A
:class:`Collective` carries what the other code needs to know of it: the number
of processes (``world_size``), this one's ``rank``, and a handful of reductions.
:data:`SINGLE` is the one-process collective (every operation a no-op);
:class:`TorchCollective` runs the same operations over an initialised
``torch.distributed`` process group (``gloo`` on CPUs, ``nccl`` on GPUs). Nothing
else in the package imports :mod:`torch.distributed`.

Every rank must make the same calls in the same order, or the job hangs: the
callers reach each collective operation unconditionally, and errors found on
one rank are shared (:meth:`Collective.raise_if_any`) so that every rank raises
them, instead of one rank failing while the others wait.

Training goes further (:class:`Agreement`): an interrupt (Ctrl-C), a
callback's request to stop, or an error on one rank is recorded there as a
status, and the ranks agree on their statuses at each step (the status rides in
DDP's gradient all-reduce) and at each epoch's end (in the all-reduces of the
loss and the validation score), so that every rank stops at the same step and
raises the same exception.
"""

import contextlib
import importlib
import os
import signal
import threading

import torch


class ShardError(ValueError):
    """Raised on every rank when the shards of a distributed fit do not fit together."""


class RankError(RuntimeError):
    """Raised on every rank when an error on one rank (a callback's, say) ended
    a distributed fit; on the rank where it happened, chained to that error."""


# A rank's status at a boundary where the ranks decide together; the highest
# over the ranks wins.
OK, STOP, INTERRUPT, ERROR = 0, 1, 2, 3


class Collective:
    """One process: every collective operation returns its input."""

    world_size = 1
    rank = 0

    @property
    def distributed(self):
        return self.world_size > 1

    def all_gather(self, obj):
        """Every rank's ``obj`` (a picklable object), in rank order."""
        return [obj]

    def sum(self, values):
        """Element-wise sum over ranks of a float64 tensor or a list of numbers."""
        return values

    def broadcast(self, obj, src=0):
        """Rank ``src``'s ``obj`` on every rank."""
        return obj

    def any(self, flag):
        """True on every rank when ``flag`` is true on some rank."""
        return bool(flag)

    def raise_if_any(self, error):
        """Raise on every rank when some rank found an ``error`` (an exception or
        None); the message names the ranks."""
        errors = self.all_gather(None if error is None else (type(error), str(error)))
        failed = [(rank, e) for rank, e in enumerate(errors) if e is not None]
        if not failed:
            return
        if not self.distributed and error is not None:
            raise error
        kind, message = failed[0][1]
        ranks = ", ".join(str(rank) for rank, _ in failed)
        kind = kind if issubclass(kind, (ValueError, TypeError)) else ShardError
        raise kind(f"distributed fit failed on rank {ranks}: {message}")

    def checked(self, function, *args, **kwargs):
        """``function(*args, **kwargs)``, whose ValueError or TypeError on one
        rank is raised on every rank (:meth:`raise_if_any`) rather than leaving
        the others waiting at their next collective operation."""
        result, error = None, None
        try:
            result = function(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            error = exc
        self.raise_if_any(error)
        return result

    def wrap(self, module, device, agreement=None):
        """``module`` as trained: wrapped so its gradients are averaged over
        ranks, ``agreement``'s status (an :class:`Agreement`) exchanged with them."""
        return module


SINGLE = Collective()


class TorchCollective(Collective):
    """The collective operations over the default ``torch.distributed`` group."""

    def __init__(self):
        import torch.distributed as dist

        self._dist = dist
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        self.backend = dist.get_backend()

    @property
    def device(self):
        """Where reductions run: nccl reduces CUDA tensors only (on this rank's
        current device), gloo CPU tensors."""
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def all_gather(self, obj):
        out = [None] * self.world_size
        self._dist.all_gather_object(out, obj)
        return out

    def sum(self, values):
        tensor = torch.as_tensor(values, dtype=torch.float64)
        moved = tensor.to(self.device)
        self._dist.all_reduce(moved)
        out = moved.to(tensor.device)
        return out if torch.is_tensor(values) else out.tolist()

    def broadcast(self, obj, src=0):
        box = [obj]
        self._dist.broadcast_object_list(box, src=src)
        return box[0]

    def any(self, flag):
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def wrap(self, module, device, agreement=None):
        from torch.nn.parallel import DistributedDataParallel

        # DDP broadcasts rank 0's parameters and buffers, then averages the
        # gradients of every backward pass over the ranks.
        device_ids = [device] if device.type == "cuda" else None
        # The buffers (data scaling) are equal on every rank already: merged
        # statistics; broadcasting them at each step would only cost time.
        # Gradients as views of DDP's buckets: no copy into the buckets and out.
        wrapped = DistributedDataParallel(module, device_ids=device_ids,
                                          broadcast_buffers=False, gradient_as_bucket_view=True)
        if agreement is not None:
            wrapped.register_comm_hook(agreement, self._status_hook)
        return wrapped

    def _status_hook(self, agreement, bucket):
        """DDP's averaging of a bucket of gradients, with each rank's status
        (``agreement.status`` at its slot, zeros elsewhere) in the same all-reduce."""
        grads = bucket.buffer()
        n_grads = grads.numel()
        status = torch.zeros(self.world_size, dtype=grads.dtype, device=grads.device)
        status[self.rank] = agreement.status
        flat = torch.cat([grads.div_(self.world_size), status])
        future = self._dist.all_reduce(flat, async_op=True).get_future()

        def done(future):
            out = future.value()[0]
            agreement.reduced = out[n_grads:]
            return out[:n_grads]

        return future.then(done)


def collective(distributed):
    """The collective for ``VAETransformer(distributed=...)``: an error when
    ``distributed`` is True outside an initialised process group."""
    if not distributed:
        return SINGLE
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "distributed=True needs an initialised torch.distributed process group: "
            "launch with torchrun (or Ray Train, Spark's TorchDistributor) and call "
            "torch.distributed.init_process_group() before fit."
        )
    return TorchCollective()


def local_device(device):
    """The device of this rank under ``device="auto"``: the GPU named by
    ``LOCAL_RANK`` (as torchrun sets it) when CUDA is available."""
    if device == "auto" and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return None



class Agreement:
    """What this rank reports where the ranks of a fit decide together.

    ``status`` is this rank's: :data:`OK`, :data:`STOP` (a callback asked to
    stop), :data:`INTERRUPT` (Ctrl-C), or :data:`ERROR` (with ``error``). At each
    boundary (:meth:`agree`, or a training step through :meth:`settle_step`)
    every rank learns every rank's status: ``decided`` is the highest of them
    and ``ranks`` the ranks that reported it. In one process the statuses are
    this one's, and :meth:`guard` lets exceptions through, as if there were no
    agreement.
    """

    def __init__(self, collective):
        self.collective = collective
        self.status, self.error = OK, None
        self.decided, self.ranks = OK, []
        self.reduced = None  # the statuses of the last step, from DDP's all-reduce

    def record(self, status, error=None):
        if status > self.status:
            self.status, self.error = status, error

    def guard(self, function, *args, default=None):
        """``function(*args)``; under a distributed collective its
        KeyboardInterrupt or exception is recorded (``default`` returned), to
        be acted on by every rank at the next boundary."""
        if not self.collective.distributed:
            return function(*args)
        try:
            return function(*args)
        except KeyboardInterrupt:
            self.record(INTERRUPT)
        except Exception as exc:  # any: the other ranks must hear of it
            self.record(ERROR, exc)
        return default

    def agree(self, values=()):
        """``values`` (numbers) summed over the ranks, every rank's status
        exchanged in the same all-reduce; sets ``decided`` and ``ranks``."""
        group = self.collective
        if not group.distributed:
            self._settle([self.status])
            return list(values)
        slots = [0.0] * group.world_size
        slots[group.rank] = float(self.status)
        out = group.sum([float(v) for v in values] + slots)
        self._settle(out[len(values):])
        return out[: len(values)]

    def settle_step(self):
        """After a training step: True when some rank's status (exchanged in
        that step's gradient all-reduce) ends training."""
        if self.reduced is None:
            return False
        self._settle(self.reduced.tolist())
        return self.decided > STOP

    def _settle(self, statuses):
        statuses = [int(round(s)) for s in statuses]
        self.decided = max(statuses)
        self.ranks = [rank for rank, s in enumerate(statuses) if s and s == self.decided]

    def raise_error(self):
        """Raise the agreed error on this rank: the same type and message on
        every rank, naming the rank it came from (the first, when several)."""
        error = self.error if self.collective.rank == self.ranks[0] else None
        described = None if error is None else (type(error).__module__,
                                                type(error).__qualname__, str(error))
        module, name, message = self.collective.broadcast(described, src=self.ranks[0])
        raise _rebuilt(module, name, f"distributed fit failed on rank {self.ranks[0]}: "
                                     f"{name}: {message}") from error

    @contextlib.contextmanager
    def deferring_interrupts(self):
        """Under a distributed collective, in the main thread: a SIGINT
        (Ctrl-C) is recorded, for every rank to act on at the next boundary,
        instead of raising KeyboardInterrupt wherever this rank is (in the
        middle of a collective operation, say)."""
        if (not self.collective.distributed
                or threading.current_thread() is not threading.main_thread()):
            yield self
            return
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda signum, frame: self.record(INTERRUPT))
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def _rebuilt(module, name, message):
    """An exception of the class ``module.name`` (a built-in or skvae's own,
    which every rank can import) with ``message``; a :class:`RankError` for
    other classes and those not built from a message."""
    if module == "builtins" or module.split(".")[0] == "skvae":
        try:
            kind = getattr(importlib.import_module(module), name)
            if isinstance(kind, type) and issubclass(kind, Exception):
                return kind(message)
        except Exception:  # any: fall back on the generic error
            pass
    return RankError(message)
