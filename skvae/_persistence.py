"""Saving and loading: a fitted estimator's state as plain data.

A pickled (or joblib- or skops-saved) :class:`~skvae.VAETransformer` holds no
torch object: its network is saved as a recipe (the likelihoods' constructor
arguments and the architecture's settings) and its weights, optimiser state and
random stream as NumPy arrays, and rebuilt into torch objects on load. So a
file does not depend on torch's internals, loads on a machine without the GPU
it was trained on, and ``skops.io`` reads it trusting no type but skvae's own.

Every saved state carries :data:`FORMAT` (a model from a newer, incompatible
skvae is refused with a clear error) and a SHA-256 checksum of its arrays (a
damaged or modified file is refused rather than loaded with wrong weights).
"""

import dataclasses
import hashlib
import inspect

import numpy as np
import torch

from ._data import seeded_torch
from ._likelihoods import BUILT_INS, Observation, init_args
from ._modules import build_module
from ._tables import ColumnSpec
from ._training import TrainingResult

#: Version of the saved state's layout; raise it when a change makes older
#: skvae unable to read the new layout.
FORMAT = 1

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
    """A saved model that cannot be loaded: written by a newer skvae, or damaged."""


def dump_state(state):
    """``state`` (the estimator's ``__dict__``, copied) with its torch objects
    replaced by plain data, a format version and a checksum."""
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
    state["_skvae_format"] = FORMAT
    state["_skvae_checksum"] = _checksum(state)
    return state


def load_state(state, make_optimizer, estimator_class=None):
    """The estimator's ``__dict__`` rebuilt from :func:`dump_state`'s output.

    ``make_optimizer(module)`` builds a fresh optimiser for the rebuilt module,
    into which the saved optimiser state is loaded. The parameters of
    ``estimator_class`` that a state saved by an older skvae lacks get their
    default values.
    """
    state = dict(state)
    if estimator_class is not None:
        for name, parameter in inspect.signature(estimator_class.__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                state.setdefault(name, parameter.default)
    version = state.pop("_skvae_format", None)
    if version is None:  # saved before the plain-data format: torch objects as they are
        return _upgrade(state)
    if not isinstance(version, int) or version > FORMAT:
        raise ModelFileError(
            f"This model was saved by a newer version of skvae (file format "
            f"{version!r}; this version reads formats up to {FORMAT}). Upgrade skvae "
            "to load it."
        )
    checksum = state.pop("_skvae_checksum", None)
    if checksum != _checksum(state):
        raise ModelFileError(
            "The saved model is damaged: its weights do not match their checksum "
            "(the file was truncated, corrupted or modified). Load an intact copy."
        )
    try:
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
    except ModelFileError:
        raise
    except Exception as exc:  # inconsistent pieces: a damaged or hand-made file
        raise ModelFileError(
            f"The saved model cannot be rebuilt ({type(exc).__name__}: {exc}); the file "
            "is damaged or was not written by skvae."
        ) from exc
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


# ------------------------------------------------------------------- checksum


def _checksum(state):
    """SHA-256 over the arrays of the converted attributes (weights, optimiser
    state, random stream), in a fixed order."""
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
