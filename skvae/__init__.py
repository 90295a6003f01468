"""skvae: variational autoencoders as scikit-learn transformers."""

from ._estimator import TrainingDivergedError, VAETransformer
from ._imputer import VAEImputer
from ._likelihoods import Likelihood

__version__ = "0.1.0"

__all__ = ["Likelihood", "TrainingDivergedError", "VAEImputer", "VAETransformer", "__version__"]
