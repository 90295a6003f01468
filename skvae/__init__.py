"""skvae: variational autoencoders as scikit-learn transformers."""

import importlib

__version__ = "0.1.0"

__all__ = ["Likelihood", "ModelFileError", "TrainingDivergedError", "VAEImputer",
           "VAETransformer", "__version__", "load", "save"]

# The public names load on first use (PEP 562), so that ``import skvae`` and
# ``python -m skvae --help`` do not wait for torch to import.
_LAZY = {
    "Likelihood": "._likelihoods",
    "ModelFileError": "._persistence",
    "TrainingDivergedError": "._training",
    "VAEImputer": "._imputer",
    "VAETransformer": "._estimator",
    "load": "._saving",
    "save": "._saving",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
