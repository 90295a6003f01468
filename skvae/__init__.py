"""skvae: variational autoencoders as scikit-learn transformers."""

from ._estimator import TrainingDivergedError, VAETransformer

__version__ = "0.1.0"

__all__ = ["TrainingDivergedError", "VAETransformer", "__version__"]
