"""Saving and loading: a fitted estimator's state as plain data.

A pickled (or joblib- or skops-saved) :class:`~skvae.VAETransformer` holds no
torch object: its network is saved as a recipe (the likelihoods' constructor
arguments and the architecture's settings) and its weights, optimiser state and
random stream as NumPy arrays, and rebuilt into torch objects on load. So a
file does not depend on torch's internals, loads on a machine without the GPU
it was trained on, and ``skops.io`` reads it trusting no type but skvae's own.

Every saved state carries :data:`FORMAT` (a model from a newer, incompatible
skvae is refused with a clear error) and a SHA-256 checksum of the whole state:
every parameter, fitted attribute and array, in a canonical serialisation (see
:func:`_checksum`). A damaged or modified file is refused, before anything is
rebuilt from it, rather than loaded with wrong weights or settings. Arrays are
saved as their raw bytes with their dtype and shape (see :func:`encode_arrays`),
not as pickled NumPy objects: unpickling a damaged ``ndarray`` runs NumPy's
reconstruction on whatever shape, dtype and buffer the damaged bytes give,
which can crash the process; raw bytes are checked before an array is made of
them. Files of format 1 (a checksum of the weights only, arrays as NumPy
objects) still load.
"""

import dataclasses
import hashlib
import inspect
import math

import numpy as np
import torch

from ._data import seeded_torch
from ._likelihoods import BUILT_INS, Observation, init_args
from ._modules import build_module
from ._tables import ColumnSpec
from ._training import TrainingResult

#: Version of the saved state's layout; raise it when a change makes older
#: skvae unable to read the new layout. 1: arrays as NumPy objects, a checksum
#: of the weights; 2: arrays as raw bytes, a checksum of the whole state.
FORMAT = 2

# The state's own keys, outside what the checksum covers.
FORMAT_KEY, CHECKSUM_KEY = "_skvae_format", "_skvae_checksum"

# What a fitted state needs beyond the parameters.
FITTED_KEYS = ("module_", "_structure", "_specs", "_fit_params", "n_features_in_",
               "n_components_", "_optimizer", "_generator")

# An array saved as raw bytes: {ARRAY_KEY: dtype, "shape": [...], "data": bytes}
# (an object array holds "items" instead); a NumPy scalar as {SCALAR_KEY: dtype,
# "data": bytes}.
ARRAY_KEY, SCALAR_KEY = "_skvae_array", "_skvae_scalar"
# The dtypes an array is saved with as raw bytes: booleans and numbers.
RAW_KINDS = "biufc"

# Parameters that fix the network's structure: a warm start or partial_fit
# cannot change them.
STRUCTURAL = (
    "n_components", "hidden_layer_sizes", "activation", "likelihood", "architecture",
    "image_shape", "conv_channels", "encoder", "decoder", "min_variance",
    "min_frequency", "max_categories", "count_depth", "covariates", "encode_covariates",
)

# The estimator's attributes that hold torch objects or skvae types, each with
# the functions that turn it into plain data and back.
_CONVERTED = ("module_", "_optimizer", "_generator", "_history", "_specs")

# Buffers of the observation model that files saved by earlier versions lack.
SUPPORT_BUFFERS = ("support_low", "support_high", "support_integer")


class ModelFileError(ValueError):
    """A saved model that cannot be loaded: written by a newer skvae, or damaged.

    Raised on loading (by :func:`skvae.load`, or by pickle, joblib or skops
    through the estimator) when the file's state does not match its checksum,
    lacks what a model needs, cannot be rebuilt, or was written by a newer
    skvae; :func:`skvae.load` also raises it when the format's reader fails on
    the file. A subclass of ``ValueError``.

    Examples
    --------
    >>> import pickle
    >>> import numpy as np
    >>> from skvae import ModelFileError, VAETransformer
    >>> X = np.random.RandomState(0).normal(size=(100, 4))
    >>> state = VAETransformer(max_iter=5, random_state=0).fit(X).__getstate__()
    >>> state["beta"] = 2.0  # changed behind the checksum's back
    >>> try:
    ...     VAETransformer.__new__(VAETransformer).__setstate__(state)
    ... except ModelFileError as exc:
    ...     print(str(exc)[:65])
    The saved model is damaged: its state does not match its checksum
    """


def dump_state(state):
    """``state`` (the estimator's ``__dict__``, copied) with its torch objects
    replaced by plain data, its arrays by raw bytes, a format version and a
    checksum of the whole."""
    state = dict(state)
    module = state.get("module_")
    if module is not None:
        state["module_"] = _module_to_plain(module, state["_structure"])
    if state.get("_optimizer") is not None:
        state["_optimizer"] = _optimizer_to_plain(state["_optimizer"])
    if state.get("_generator") is not None:
        state["_generator"] = state["_generator"].get_state().numpy().copy()
    if state.get("_history") is not None:
        state["_history"] = dataclasses.asdict(state["_history"])
    if state.get("_specs") is not None:
        state["_specs"] = [_spec_to_plain(spec) for spec in state["_specs"]]
    state = encode_arrays(state)
    state[CHECKSUM_KEY] = _checksum(state)
    state[FORMAT_KEY] = FORMAT
    return state


def load_state(state, make_optimizer, estimator_class=None):
    """The estimator's ``__dict__`` rebuilt from :func:`dump_state`'s output.

    ``make_optimizer(module)`` builds a fresh optimiser for the rebuilt module,
    into which the saved optimiser state is loaded. The parameters of
    ``estimator_class`` that a state saved by an older skvae lacks get their
    default values. The state is checked whole (its format, its checksum, the
    keys a fitted model needs) before anything is rebuilt from it.
    """
    if not isinstance(state, dict):
        raise ModelFileError(f"The saved model is damaged: its state is a "
                             f"{type(state).__name__}, not a dict.")
    state = dict(state)
    version = state.pop(FORMAT_KEY, None)
    if version is None:
        check_legacy(state)
    else:
        check_saved(state, version)
    if estimator_class is not None:
        for name, parameter in inspect.signature(estimator_class.__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                state.setdefault(name, parameter.default)
    if version is None:  # saved before the plain-data format: torch objects as they are
        return _upgrade(state)
    try:
        return _rebuild(decode_arrays(state), make_optimizer)
    except ModelFileError:
        raise
    except Exception as exc:  # inconsistent pieces: a damaged or hand-made file
        raise ModelFileError(
            f"The saved model cannot be rebuilt ({type(exc).__name__}: {exc}); the file "
            "is damaged or was not written by skvae."
        ) from exc


def check_legacy(state):
    """Refuse a state without a format version unless it is one saved before
    the versions: torch objects as they are, and none of skvae's own keys."""
    module = state.get("module_")
    own = sorted(key for key in state if isinstance(key, str) and key.startswith("_skvae"))
    if own or isinstance(module, dict) or (module is not None
                                           and not isinstance(module, torch.nn.Module)):
        raise ModelFileError(
            "The saved model is damaged: its state has no format version "
            f"(key {FORMAT_KEY!r} missing; found {own or 'no skvae keys'}), though it is "
            "not a model saved before format versions existed. Load an intact copy."
        )


def check_saved(state, version):
    """Refuse a versioned state that this skvae cannot read, that does not
    match its checksum, or that lacks what a fitted model needs."""
    if type(version) is not int or version < 1:
        raise ModelFileError(f"The saved model is damaged: its format version is {version!r}.")
    if version > FORMAT:
        raise ModelFileError(
            f"This model was saved by a newer version of skvae (file format "
            f"{version!r}; this version reads formats up to {FORMAT}). Upgrade skvae "
            "to load it."
        )
    checksum = state.pop(CHECKSUM_KEY, None)
    expected = _checksum(state) if version >= 2 else _weights_checksum(state)
    if checksum != expected:
        covered = "state does not match its" if version >= 2 else "weights do not match their"
        raise ModelFileError(
            f"The saved model is damaged: its {covered} checksum "
            "(the file was truncated, corrupted or modified). Load an intact copy."
        )
    if "module_" in state:
        missing = [key for key in FITTED_KEYS if key not in state]
        if missing:
            raise ModelFileError(f"The saved model is damaged: a fitted model's state "
                                 f"lacks {missing}.")


def _rebuild(state, make_optimizer):
    """The torch objects and skvae types of a checked, decoded state."""
    if state.get("_specs") is not None:
        state["_specs"] = [_spec_from_plain(spec) for spec in state["_specs"]]
    if state.get("_history") is not None:
        state["_history"] = TrainingResult(**state["_history"])
    if state.get("_generator") is not None:
        generator = torch.Generator()
        generator.set_state(torch.from_numpy(np.array(state["_generator"], np.uint8)))
        state["_generator"] = generator
    if state.get("module_") is not None:
        state["module_"] = _module_from_plain(state["module_"])
        if state.get("_optimizer") is not None:
            optimizer = make_optimizer(state["module_"])
            optimizer.load_state_dict(_optimizer_from_plain(state["_optimizer"]))
            state["_optimizer"] = optimizer
    return state


def _upgrade(state):
    """A state saved before the plain-data format, given what the current
    estimator expects of a fitted one (its structure, its fitted parameters)."""
    module = state.get("module_")
    if module is None or "_structure" in state:
        return state
    state["_structure"] = {
        "architecture": state.get("architecture", "mlp"),
        "n_components": module.n_components,
        "options": {name: state.get(name) for name in (
            "min_variance", "hidden_layer_sizes", "activation", "image_shape",
            "conv_channels")},
        "encoder": state.get("encoder"),
        "decoder": state.get("decoder"),
        "n_mask_inputs": module.observation.n_features if module.masked else 0,
    }
    state["_fit_params"] = {name: state.get(name) for name in STRUCTURAL}
    return state


# ---------------------------------------------------------------- the network


def _module_to_plain(module, structure):
    blocks = []
    for likelihood, columns in zip(module.observation.likelihoods, module.observation.columns):
        kind = type(likelihood)
        # Built-ins by name; a user's class by reference (as pickle saves classes).
        reference = kind.name if BUILT_INS.get(kind.name) is kind else kind
        args, kwargs = init_args(likelihood)
        blocks.append({
            "likelihood": reference,
            "args": [_plain(value) for value in args],
            "kwargs": {key: _plain(value) for key, value in kwargs.items()},
            "columns": [int(j) for j in columns],
        })
    weights = {
        name: tensor.detach().cpu().numpy().copy()
        for name, tensor in module.state_dict().items()
    }
    return {"structure": structure, "blocks": blocks, "weights": weights}


def _module_from_plain(saved):
    blocks = []
    for block in saved["blocks"]:
        reference = block["likelihood"]
        kind = BUILT_INS[reference] if isinstance(reference, str) else reference
        if isinstance(reference, str):
            likelihood = kind(*block["args"], **block["kwargs"])
        else:  # a user's constructor may draw random numbers: keep them off the user's state
            with seeded_torch(0):
                likelihood = kind(*block["args"], **block["kwargs"])
        blocks.append((likelihood, block["columns"]))
    module = build_module(Observation(blocks), saved["structure"], generator=None)
    weights = {name: torch.from_numpy(np.array(value)) for name, value in saved["weights"].items()}
    missing, unexpected = module.load_state_dict(weights, strict=False)
    # A model saved before the columns' supports were learned has none: it
    # keeps the unbounded outputs it was fitted with.
    missing = [name for name in missing if name.rsplit(".", 1)[-1] not in SUPPORT_BUFFERS]
    if missing or unexpected:
        raise RuntimeError(f"the saved weights do not fit the network (missing {missing}, "
                           f"unexpected {unexpected})")
    return module


def _plain(value):
    """Constructor arguments with NumPy scalars as Python numbers, sequences as
    lists (a categorical likelihood's categories)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------ optimiser


def _optimizer_to_plain(optimizer):
    saved = optimizer.state_dict()
    state = [
        [int(index), {key: _array(value) for key, value in entry.items()}]
        for index, entry in saved["state"].items()
    ]
    groups = [dict(group) for group in saved["param_groups"]]
    return {"state": state, "param_groups": groups}


def _optimizer_from_plain(saved):
    state = {
        index: {key: torch.from_numpy(np.array(value)) if isinstance(value, np.ndarray) else value
                for key, value in entry.items()}
        for index, entry in saved["state"]
    }
    return {"state": state, "param_groups": [dict(group) for group in saved["param_groups"]]}


def _array(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    return value


# ---------------------------------------------------------------- column specs


def _spec_to_plain(spec):
    return {"name": spec.name, "likelihood": spec.likelihood, "dtype": _dtype_to_plain(spec.dtype)}


def _spec_from_plain(saved):
    return ColumnSpec(saved["name"], saved["likelihood"], _dtype_from_plain(saved["dtype"]))


def _dtype_to_plain(dtype):
    """A column's dtype as plain data: its name (and categories for a pandas
    categorical dtype)."""
    if dtype is None:
        return None
    categories = getattr(dtype, "categories", None)
    if categories is not None:
        return {"name": "category", "categories": _plain(list(categories)),
                "categories_dtype": str(categories.dtype), "ordered": bool(dtype.ordered)}
    return {"name": str(dtype)}


def _dtype_from_plain(saved):
    if saved is None:
        return None
    import pandas as pd  # a model fitted on a DataFrame needs pandas anyway

    if saved["name"] == "category":
        categories = pd.Index(saved["categories"]).astype(saved["categories_dtype"])
        return pd.CategoricalDtype(categories, ordered=saved["ordered"])
    return pd.api.types.pandas_dtype(saved["name"])


# ------------------------------------------------------------ arrays as bytes


def encode_arrays(value):
    """``value`` with every NumPy array and scalar in it (in dicts, lists and
    tuples) replaced by plain data: its dtype, shape and raw bytes."""
    if type(value) is dict:  # a subclass (a user's) is left as it is
        return {key: encode_arrays(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(encode_arrays(item) for item in value)
    if isinstance(value, np.ndarray):
        shape = [int(n) for n in value.shape]
        if value.dtype.kind in RAW_KINDS and value.dtype.fields is None:
            return {ARRAY_KEY: value.dtype.str, "shape": shape,
                    "data": np.ascontiguousarray(value).tobytes()}
        if value.dtype == object:
            return {ARRAY_KEY: "O", "shape": shape,
                    "items": [encode_arrays(item) for item in value.ravel().tolist()]}
        return value  # another dtype (strings, dates): left to the pickler
    if isinstance(value, np.generic) and value.dtype.kind in RAW_KINDS:
        return {SCALAR_KEY: value.dtype.str, "data": value.tobytes()}
    return value


def decode_arrays(value):
    """The inverse of :func:`encode_arrays`, each array's pieces checked
    (dtype, shape, the number of bytes) before an array is made of them."""
    if type(value) is dict:
        if ARRAY_KEY in value:
            return _decode_array(value)
        if SCALAR_KEY in value:
            return _raw_array(value[SCALAR_KEY], [], value.get("data"))[()]
        return {key: decode_arrays(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(decode_arrays(item) for item in value)
    return value


def _decode_array(saved):
    shape = saved.get("shape")
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"an array's shape is {shape!r}")
    if saved[ARRAY_KEY] != "O":
        return _raw_array(saved[ARRAY_KEY], shape, saved.get("data"))
    items = saved.get("items")
    if not isinstance(items, list) or len(items) != math.prod(shape):
        raise ValueError(f"an object array of shape {shape} has {items!r:.40} as items")
    out = np.empty(len(items), dtype=object)
    out[:] = [decode_arrays(item) for item in items]
    return out.reshape(shape)


def _raw_array(dtype, shape, data):
    if not isinstance(dtype, str) or not isinstance(data, bytes):
        raise ValueError(f"an array's dtype is {dtype!r:.40} and its data a "
                         f"{type(data).__name__}")
    dtype = np.dtype(dtype)
    if dtype.kind not in RAW_KINDS or dtype.fields is not None:
        raise ValueError(f"an array's dtype is {dtype}")
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"an array of {dtype} and shape {tuple(shape)} has {len(data)} bytes")
    return np.frombuffer(data, dtype).reshape(shape).copy()


# ------------------------------------------------------------------- checksum


def _checksum(state):
    """SHA-256 over the whole ``state`` but its format and checksum keys, in
    a canonical serialisation (see :func:`_canonical`)."""
    digest = hashlib.sha256()
    _canonical({k: v for k, v in state.items() if k not in (FORMAT_KEY, CHECKSUM_KEY)},
               digest.update)
    return digest.hexdigest()


def _canonical(value, feed):
    """Feed ``value`` to ``feed`` as bytes that tell its type and content:
    plain data and arrays in full (dict items in a fixed order), classes and
    functions by name, other objects (a user's callbacks) by their class's name."""
    if value is None or isinstance(value, bool):
        feed(b"N" if value is None else b"T" if value else b"F")
    elif isinstance(value, (int, float, str, bytes)) and not isinstance(value, np.generic):
        if isinstance(value, bytes):
            data = value
        elif isinstance(value, str):
            data = value.encode("utf-8", "surrogatepass")
        else:  # a float exactly, by its hexadecimal form
            data = (value.hex() if isinstance(value, float) else str(value)).encode()
        feed(f"{type(value).__name__}:{len(data)}:".encode() + data)
    elif isinstance(value, (list, tuple)):
        feed(f"{type(value).__name__}:{len(value)}:".encode())
        for item in value:
            _canonical(item, feed)
    elif isinstance(value, dict):
        feed(f"dict:{len(value)}:".encode())
        for key in sorted(value, key=lambda key: (type(key).__name__, repr(key))):
            _canonical(key, feed)
            _canonical(value[key], feed)
    elif isinstance(value, (np.ndarray, np.generic)):
        feed(f"array:{value.dtype.str}:{value.shape}:".encode())
        if value.dtype == object:
            _canonical(np.asarray(value).ravel().tolist(), feed)
        else:
            feed(np.ascontiguousarray(value).tobytes())
    else:
        kind = value if isinstance(value, type) or callable(value) else type(value)
        name = f"{getattr(kind, '__module__', '')}.{getattr(kind, '__qualname__', '')}"
        feed(f"object:{name}:".encode())


def _weights_checksum(state):
    """The checksum of format 1: SHA-256 over the arrays of the converted
    attributes (weights, optimiser state, random stream), in a fixed order."""
    digest = hashlib.sha256()

    def feed(value, path):
        if isinstance(value, np.ndarray):
            digest.update(path.encode())
            digest.update(str(value.dtype).encode() + str(value.shape).encode())
            if value.dtype != object:
                digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                feed(value[key], f"{path}/{key}")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                feed(item, f"{path}/{index}")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            digest.update(f"{path}={value!r}".encode())

    for name in _CONVERTED:
        feed(state.get(name), name)
    return digest.hexdigest()
