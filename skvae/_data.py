"""Data handling in one place: NumPy to torch, devices, seeds, minibatches."""

import contextlib
import threading
import warnings
from numbers import Integral

import numpy as np
import scipy.sparse as sp
import torch

MAX_SEED = 2**31 - 1
# Rows per batch when evaluating (inference, validation scores): large enough to
# amortise per-call overheads, small enough for the intermediates to stay modest.
EVAL_BATCH_SIZE = 8192
_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def resolve_device(device):
    """The torch.device for ``device`` ("auto", "cpu", "cuda", "cuda:1", ...)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device={device!r} is not a device torch knows; use 'auto', 'cpu', "
            "'cuda' or 'cuda:<index>'."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='auto' or 'cpu'."
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device={device!r} is not supported: skvae trains on 'cpu' or 'cuda' "
            "devices; use device='auto', 'cpu' or 'cuda'."
        )
    return resolved


def draw_seed(random_state):
    """An integer seed from a ``random_state`` parameter.

    ``None`` takes fresh entropy without touching NumPy's global random state; an
    int is used as is; a ``RandomState`` or ``Generator`` instance is drawn from
    (and so advances). Anything else is a clear error.
    """
    if random_state is None:
        return int(np.random.default_rng().integers(MAX_SEED))
    if isinstance(random_state, (bool, np.bool_)):
        pass
    elif isinstance(random_state, (int, np.integer)):
        return int(random_state) % MAX_SEED
    elif isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(MAX_SEED))
    elif isinstance(random_state, np.random.Generator):
        return int(random_state.integers(MAX_SEED))
    raise ValueError(
        "random_state must be None, an int, a numpy RandomState or a numpy Generator; "
        f"got {random_state!r}."
    )


def make_generator(seed, device):
    """A private torch.Generator on ``device``, seeded with ``seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def evaluation_noise(n_samples, n_components, seed):
    """Fixed standard normal draws of shape (n_samples, 1, n_components).

    A scrambled Sobol sequence mapped through the normal quantile function: each
    point is marginally N(0, I), so bounds stay valid, and the set covers the
    space more evenly than independent draws. Shared by all rows, it makes
    evaluation deterministic and independent of batching.
    """
    engine = torch.quasirandom.SobolEngine(n_components, scramble=True, seed=int(seed))
    uniform = engine.draw(n_samples, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    return torch.special.ndtri(uniform).unsqueeze(1)


# torch's global generator is one per process: code that must draw from it
# (a user's network or likelihood, built by its own constructor) holds this lock.
_GLOBAL_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def seeded_torch(seed):
    """Seed torch's global CPU generator inside the block and restore it after.

    Only a user's plug-ins (networks and likelihoods built by their own
    constructors) draw from the global generator; skvae's own networks are
    initialised from private generators. The lock makes such builds from many
    threads give the same result as serial ones; the user's random state is as
    it was after the block.
    """
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


class SparseRows:
    """The rows of a scipy sparse matrix, read densely a few at a time.

    What the model sees of sparse input: ``X[key]`` (a slice, an index array,
    or a row and column key) is a dense NumPy array of those entries, so code
    that reads a matrix in chunks of rows reads a sparse one the same way,
    and never densifies it whole. The matrix is kept in CSR form (rows are
    contiguous); a CSC matrix is converted once. The user's matrix is read,
    never changed (its indices are not even sorted).

    Parameters
    ----------
    matrix : scipy sparse matrix or array
        Validated input: finite floats.
    """

    ndim = 2

    def __init__(self, matrix):
        self.matrix = matrix.tocsr()  # the same object when already CSR: no copy

    @property
    def shape(self):
        return self.matrix.shape

    @property
    def dtype(self):
        return self.matrix.dtype

    def __len__(self):
        return self.matrix.shape[0]

    def __getitem__(self, key):
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        return self.matrix[key].toarray()

    def rows(self, key):
        """The rows ``key`` (a slice or index array), still sparse."""
        return SparseRows(self.matrix[key])

    def sum(self, dtype=None):
        return self.matrix.data.sum(dtype=dtype)

    def tensor(self, dtype=torch.float32):
        """The rows as a :class:`TensorRows` of ``dtype``."""
        return TensorRows(self.matrix, dtype)


class TensorRows:
    """A sparse matrix's rows as training and inference read them: indexed
    like a tensor on the host (``x[slice]``, ``x[index tensor]``), each read
    a dense tensor of ``dtype``; see :class:`SparseRows`."""

    device = torch.device("cpu")

    def __init__(self, matrix, dtype):
        self.matrix, self.dtype = matrix, dtype
        self.shape = torch.Size(matrix.shape)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        dense = self.matrix[key].toarray()
        return torch.from_numpy(np.asarray(dense, dtype=_NUMPY_DTYPES[self.dtype]))

    def to(self, device, *args, **kwargs):
        if torch.device(device).type != "cpu":
            raise TypeError("sparse rows are densified a batch at a time; move the batches.")
        return self

    def element_size(self):
        return self.dtype.itemsize

    def numel(self):
        return self.shape[0] * self.shape[1]


# A dense read of sparse rows (statistics, inference) takes at most this many
# bytes: a few hundred rows of a 20,000-column matrix, not thousands.
SPARSE_BATCH_BYTES = 64 * 2**20


def dense_rows(X, rows):
    """Rows to read of ``X`` at a time: ``rows``, or fewer for a sparse ``X``,
    so that one dense read stays within :data:`SPARSE_BATCH_BYTES`."""
    if not is_sparse(X):
        return rows
    return max(1, min(rows, SPARSE_BATCH_BYTES // (8 * max(1, X.shape[1]))))


# Scoring with K importance samples decodes K copies of each row: a batch's
# (K, rows, columns) tensors in float64 take at most this many bytes each, so
# that wide rows (20,000 genes) score in a few rows at a time, not hundreds.
EVAL_SAMPLE_BYTES = 32 * 2**20


def eval_rows(n_samples, n_columns):
    """Rows per batch when each is decoded ``n_samples`` times over
    ``n_columns`` columns: ``EVAL_BATCH_SIZE // n_samples``, or fewer for wide
    rows (see :data:`EVAL_SAMPLE_BYTES`)."""
    wide = EVAL_SAMPLE_BYTES // (8 * n_samples * max(1, n_columns))
    return max(1, min(EVAL_BATCH_SIZE // n_samples, wide))


def is_sparse(X):
    """Whether ``X`` is a scipy sparse matrix or array, or rows of one."""
    return sp.issparse(X) or isinstance(X, (SparseRows, TensorRows))


def to_tensor(X, device, dtype=torch.float32):
    """A tensor on ``device`` holding ``X``; no copy when nothing needs changing.

    A read-only array (a memory-mapped file opened with ``mmap_mode="r"``) is
    used in place too: nothing here writes to the tensor, so torch's warning
    about non-writable arrays does not apply. Sparse rows
    (:class:`SparseRows`) stay sparse, on the host: a :class:`TensorRows`.
    """
    if isinstance(X, SparseRows):
        return X.tensor(dtype)
    X = np.require(X, _NUMPY_DTYPES[dtype], ["C"])
    if X.flags.writeable:
        return torch.from_numpy(X).to(device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(X).to(device)


def batch_slices(n_rows, batch_size):
    """Slices covering ``range(n_rows)`` in order, ``batch_size`` rows each."""
    return [slice(start, min(start + batch_size, n_rows)) for start in range(0, n_rows, batch_size)]


def is_positive_integer(value):
    """Whether ``value`` is an integer of at least 1 (a bool is not)."""
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= 1


def split_validation(n_rows, validation_fraction, generator):
    """Row indices of a random (train, validation) split of ``n_rows`` rows.

    Indices rather than copies: the data matrix is never duplicated.
    """
    n_valid = max(1, int(round(validation_fraction * n_rows)))
    if n_rows - n_valid < 1:
        raise ValueError(
            f"early_stopping needs at least 2 samples to hold out a validation set; "
            f"got n_samples={n_rows}."
        )
    order = torch.randperm(n_rows, generator=generator, device=generator.device)
    return order[n_valid:], order[:n_valid]


# Share of the device's free memory the training data may take before it is kept on
# the host and sent over in chunks instead.
DEVICE_DATA_FRACTION = 0.5
HOST_CHUNK_BYTES = 256 * 2**20


def free_device_bytes(device):
    """Free memory on ``device`` in bytes (None for the CPU: no limit applies)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free


def place_rows(x, device, batch_size):
    """Put the training tensor ``x`` where training reads it.

    Returns ``(x, chunk_rows)``: ``x`` moved to ``device`` once when it takes at
    most ``DEVICE_DATA_FRACTION`` of the device's free memory (``chunk_rows`` is
    None), else ``x`` left where it is, on the host, with the number of rows, a
    multiple of ``batch_size``, to send to the device at a time (see
    :func:`gather_rows`). Sparse rows (:class:`TensorRows`) always stay on the
    host and are densified a batch (CPU) or a chunk (GPU) at a time.
    """
    free = free_device_bytes(device)
    nbytes = x.element_size() * x.numel()  # dense: what a sparse matrix becomes there
    if free is None:
        return x.to(device), None
    if nbytes <= DEVICE_DATA_FRACTION * free and not isinstance(x, TensorRows):
        return x.to(device), None
    row_bytes = max(1, nbytes // max(1, x.shape[0]))
    budget = min(HOST_CHUNK_BYTES, int(DEVICE_DATA_FRACTION * free))
    chunk_rows = max(1, budget // row_bytes // batch_size) * batch_size
    return x, chunk_rows


def gather_rows(x, rows, device):
    """``x[rows]`` on ``device``: one host-to-device copy when ``x`` is on the host.

    ``rows`` are on ``x``'s device. For CUDA the rows are gathered straight into
    page-locked memory and copied asynchronously, so the host does not wait for
    the device (only the chunk is pinned, not the whole array).
    """
    if x.device == device:
        return x[rows]
    if device.type != "cuda" or isinstance(x, TensorRows):
        return x[rows].to(device)
    staged = torch.empty((rows.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype, pin_memory=True)
    torch.index_select(x, 0, rows, out=staged)
    return staged.to(device, non_blocking=True)


def batched(function, x, batch_size):
    """Apply ``function`` to row batches of ``x`` and concatenate the results."""
    if x.shape[0] <= batch_size:
        return function(x if isinstance(x, torch.Tensor) else x[:])
    return torch.cat([function(x[s]) for s in batch_slices(x.shape[0], batch_size)])
