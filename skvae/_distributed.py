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
"""

import os

import torch


class ShardError(ValueError):
    """Raised on every rank when the shards of a distributed fit do not fit together."""


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

    def wrap(self, module, device):
        """``module`` as trained: wrapped so its gradients are averaged over ranks."""
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

    def wrap(self, module, device):
        from torch.nn.parallel import DistributedDataParallel

        # DDP broadcasts rank 0's parameters and buffers, then averages the
        # gradients of every backward pass over the ranks.
        device_ids = [device] if device.type == "cuda" else None
        # The buffers (data scaling) are equal on every rank already: merged
        # statistics; broadcasting them at each step would only cost time.
        # Gradients as views of DDP's buckets: no copy into the buckets and out.
        return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False,
                                       gradient_as_bucket_view=True)


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

