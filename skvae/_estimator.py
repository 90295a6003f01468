"""VAETransformer: the scikit-learn face of the VAE.

Its methods validate, delegate to the torch side (``_tables`` and
``_likelihoods`` for the columns, ``_modules`` for the networks, ``_elbo`` for
the objective, ``_training`` for the loop) and convert the results back to
NumPy. With ``_callbacks`` (scikit-learn's callback API) and ``_demo`` it is
one of the modules that import scikit-learn.
"""

import contextlib
import copy
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._callbacks import CallbackSupportMixin, EpochCallbacks, with_callbacks
from ._data import (
    EVAL_BATCH_SIZE,
    MAX_SEED,
    batched,
    draw_seed,
    evaluation_noise,
    make_generator,
    place_rows,
    resolve_device,
    seeded_torch,
    split_validation,
    to_tensor,
)
from ._distributed import SINGLE, ShardError, collective, local_device
from ._elbo import Objective
from ._likelihoods import LIKELIHOODS
from ._modules import ACTIVATIONS, ARCHITECTURES, VAEModule, build_networks
from ._progress import Progress
from ._likelihoods import describe, observed
from ._tables import (
    build_observation,
    column_specs,
    decode,
    encode,
    is_dataframe,
    merge_specs,
    missing_entries,
)
from ._training import (
    TrainingData,
    TrainingSettings,
    auto_batch_size,
    auto_learning_rate,
    make_optimizer,
    move_optimizer_state,
    train_module,
)


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite.

    The estimator is left fitted with the weights of the last epoch whose loss
    was finite, so it can still be inspected or used.
    """


class VAETransformer(
    CallbackSupportMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Variational autoencoder as a scikit-learn transformer.

    A neural encoder maps each row to a Gaussian posterior q(z | x) over
    ``n_components`` latent dimensions and a neural decoder maps a latent code back
    to a likelihood p(x | z) over the features. Both are trained together by
    maximising the evidence lower bound (ELBO), ``E_q[log p(x | z)] - beta *
    KL(q(z | x) || N(0, I))``, with minibatch Adam and the reparameterisation trick.

    ``transform`` returns the posterior mean (deterministic), ``inverse_transform``
    the decoder's mean, ``sample`` draws new rows, and ``score_samples`` a lower
    bound on log p(x), so that model selection works without labels as with
    :class:`~sklearn.decomposition.PCA` and
    :class:`~sklearn.decomposition.FactorAnalysis`.

    Parameters
    ----------
    n_components : int, default=2
        Number of latent dimensions.
    hidden_layer_sizes : tuple of int, default=(128,)
        Widths of the encoder's hidden layers; the decoder uses them in reverse.
        One layer is the default: on tables of hundreds to thousands of rows it
        gave higher held-out likelihoods than two (``benchmarks/bench_quality.py``).
    activation : {"relu", "tanh", "elu", "gelu"}, default="relu"
        Activation of the hidden layers.
    likelihood : str, class, callable, dict or list, default="auto"
        The distribution p(x | z) of each feature, one of

        - ``"gaussian"``: a learned variance per feature; the data are standardised
          inside and the density is reported in the original units;
        - ``"bernoulli"``: data in [0, 1] (binary columns, or grey-level pixels);
        - ``"categorical"``: a softmax over the categories seen in ``fit``;
        - ``"poisson"`` and ``"negbinom"`` (negative binomial, with a learned
          dispersion per feature): counts, non-negative integers;
        - ``"auto"``: for DataFrame columns by dtype (bool: bernoulli; category,
          object or string: categorical; integer: negbinom, or gaussian if a value
          is negative; float: gaussian); every column of an array is gaussian.

        - your own: a subclass of :class:`~skvae.Likelihood`, or a factory that
          takes the number of columns and returns an instance, such as
          ``functools.partial(StudentT, df=4)`` (see the user guide's
          "Extending skvae").

        A single value applies to every column; a dict maps column names to
        likelihoods (the others get ``"auto"``); a list gives one per column (for
        arrays, such as a ColumnTransformer's output).
    architecture : {"mlp", "conv"}, default="mlp"
        ``"mlp"``: fully connected encoder and decoder. ``"conv"``: a
        convolutional encoder and a transposed-convolution decoder for images,
        given as rows of flattened pixels with ``image_shape``; needs a
        likelihood with one parameter per pixel (not ``"categorical"``).
    image_shape : tuple of int or None, default=None
        ``(channels, height, width)`` of the images, for ``architecture="conv"``;
        ``channels * height * width`` must equal the number of features. Pixels
        are in C order (as ``images.reshape(n, -1)`` flattens them).
    conv_channels : tuple of int, default=(32, 64)
        Channels of the encoder's strided convolutions (each halves the image);
        the decoder uses them in reverse.
    encoder : callable or None, default=None
        Your own encoder network instead of the architecture's: a class or
        factory called as ``encoder(n_inputs, n_outputs)`` that returns a
        :class:`torch.nn.Module` mapping a batch of shape ``(batch, n_inputs)``
        to ``(batch, n_outputs)``, where ``n_outputs = 2 * n_components`` (the
        posterior means, then the log-variances). Bind extra settings with
        :func:`functools.partial`. A fresh network is built at each ``fit``.
    decoder : callable or None, default=None
        Your own decoder network: called as ``decoder(n_components, n_params)``,
        it maps ``(batch, n_components)`` to ``(batch, n_params)``, the
        likelihoods' parameters.
    min_variance : float, default=1e-6
        Floor on each Gaussian feature's variance, in units of that feature's
        training variance: it keeps a feature the decoder can predict exactly
        from driving the likelihood to infinity. Features recorded on a grid
        (such as grey levels or rounded measurements) get a higher floor, the
        variance of a uniform spread over the grid step, ``gap**2 / 12``; a
        constant training feature gets ``max(min_variance, 1e-3)`` in its own
        units. The default is low so that precise continuous data are not
        capped below PCA's or FactorAnalysis's likelihood (see the user guide's
        "Training").
    beta : float, default=1.0
        Weight of the KL term (beta-VAE). ``beta=1`` is the true ELBO.
    kl_warmup_epochs : int, default=0
        Number of epochs over which the KL weight rises linearly to ``beta``.
    n_importance_samples : int, default=1
        Number of latent samples per row in the training objective: 1 gives the
        ELBO; more give the tighter importance-weighted bound (IWAE, Burda et al.
        2015), at that many times the decoder's cost.
    n_score_samples : int, default=32
        Number of importance samples with which ``score_samples`` and ``score``
        estimate log p(x); 1 gives the ELBO.
    max_iter : int, default=200
        Maximum number of epochs (passes over the data).
    batch_size : int or "auto", default="auto"
        Rows per minibatch (clipped to the number of rows). ``"auto"`` takes a
        quarter of the training rows, rounded up, within [32, 512]: about four
        optimiser steps per epoch on small tables (so that ``max_iter`` epochs
        are enough steps), and large batches, which are cheaper per row, on
        large ones.
    learning_rate_init : float or "auto", default="auto"
        Adam's learning rate. ``"auto"`` scales it with the square root of the
        batch size (the square-root rule for Adam), ``1e-3 * sqrt(batch_size /
        32)``: 1e-3 for batches of 32 rows, 2e-3 for 128, 4e-3 for 512. Larger
        rates overfitted small tables; smaller ones made large batches slow.
    learning_rate : {"constant", "adaptive"}, default="constant"
        ``"adaptive"`` divides the learning rate by 5 whenever the monitored loss
        has not improved by ``tol`` for half the patience (see
        ``n_iter_no_change``), at least one epoch.
    alpha : float, default=0.0
        L2 penalty (Adam weight decay).
    max_grad_norm : float or None, default=None
        Clip the gradient's global norm to this value at each step.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows, stop when their ELBO has not
        improved by ``tol`` for the patience of ``n_iter_no_change``, and keep
        the weights that scored best on them.
    validation_fraction : float, default=0.1
        Share of rows held out when ``early_stopping`` is on.
    n_iter_no_change : int, default=10
        Patience: epochs without improvement (of the training loss, or of the
        validation ELBO with ``early_stopping``) before training stops, but
        never fewer epochs than make 200 optimiser steps. On a small table an
        epoch is a few steps, and 10 of them end training on its first
        plateau; the patience in epochs is therefore ``max(n_iter_no_change,
        ceil(200 / steps_per_epoch))``, where ``steps_per_epoch`` is the
        number of training rows divided by ``batch_size``, rounded up.
    tol : float, default=1e-4
        Smallest improvement, in nats per row, that counts.
    warm_start : bool, default=False
        Continue from the previous fit's weights instead of starting again.
    device : str, default="auto"
        Torch device: ``"auto"`` takes CUDA when available, else the CPU; ``"cpu"``,
        ``"cuda"``, ``"cuda:1"`` and so on are also accepted. The fitted model is
        kept on the CPU, so it pickles and loads anywhere. The training data are
        copied to the device once per fit when they take at most half of its free
        memory, and otherwise sent over in chunks of up to 256 MiB.
    mixed_precision : bool, default=False
        Run the encoder and decoder networks under bfloat16 autocast during
        training (the likelihood, KL and optimiser stay in float32). Meant for
        GPUs with bfloat16 units (NVIDIA Ampere and later), where it saves time and
        memory on wide networks and images; torch also supports it on CPUs, but
        there it is usually slower. Inference always runs at full precision.
    compile : bool, default=False
        Compile the training step with ``torch.compile`` (once per ``fit``, for
        all batch sizes). Compilation takes 10-25 seconds and then makes each
        step about 1.15x faster on a CPU for the default networks
        (``benchmarks/bench_speed.py --compile``), so it pays only for long fits.
        Needs a C++ compiler on the CPU (Triton on a GPU).
    distributed : bool, default=False
        Train one model over several processes with PyTorch's
        DistributedDataParallel. ``fit`` is then called on every rank of an
        initialised ``torch.distributed`` process group (as ``torchrun`` starts
        it), each rank passing its own shard of rows: the data statistics
        (scaling, categories, variance floors) are merged across ranks, every
        rank takes the same number of steps per epoch (a smaller shard goes round
        again), each step averages the gradients of one batch of ``batch_size``
        rows per rank, and the training loss and validation ELBO are averaged
        over ranks, so early stopping decides once for all. Every rank ends with
        the same fitted estimator, on the CPU. Under ``device="auto"`` a rank
        trains on the GPU that ``LOCAL_RANK`` names when CUDA is available.
        See the user guide's "Scaling out".
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, the validation split and the
        reparameterisation noise. An int makes ``fit`` reproducible. The global
        NumPy and torch random states are never touched.
    verbose : int, default=0
        0 prints nothing; otherwise a progress bar on a terminal, or one line per
        epoch. To watch, log, checkpoint or stop training at each epoch, pass
        callbacks to ``set_callbacks`` (scikit-learn's callback API; see the user
        guide's "Extending skvae").

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained VAE (on the CPU).
    n_iter_ : int
        Number of epochs run.
    loss_curve_ : list of float
        Mean training loss (negative ELBO, nats per row) of each epoch.
    best_loss_ : float
        Lowest value in ``loss_curve_``.
    validation_scores_ : list of float or None
        Mean validation ELBO of each epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        Highest value in ``validation_scores_`` with ``early_stopping``, else None.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``, when they are all strings.

    See Also
    --------
    sklearn.decomposition.PCA : Linear dimensionality reduction.
    sklearn.decomposition.FactorAnalysis : Linear Gaussian latent variable model.

    Notes
    -----
    Training runs in float32, whatever the input's dtype: that is what makes it
    fast. ``transform``, ``inverse_transform`` and ``score_samples`` compute in
    the input's precision (float32 input in float32, anything else in float64
    with a float64 copy of the weights), so results do not depend on how rows are
    batched and outputs keep scikit-learn's dtype conventions.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skvae import VAETransformer
    >>> X, _ = load_iris(return_X_y=True)
    >>> vae = VAETransformer(n_components=2, max_iter=20, random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (150, 2)
    >>> vae.inverse_transform(Z).shape
    (150, 4)
    >>> vae.sample(3, random_state=0).shape
    (3, 4)
    >>> bool(vae.score(X) > vae.score(X + 5))
    True
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [StrOptions(set(LIKELIHOODS) | {"auto"}), dict, list, tuple, callable],
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "image_shape": [tuple, list, None],
        "conv_channels": [tuple, list],
        "encoder": [callable, None],
        "decoder": [callable, None],
        "min_variance": [Interval(Real, 0, None, closed="neither")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "n_score_samples": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "learning_rate": [StrOptions({"constant", "adaptive"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [str],
        "mixed_precision": ["boolean"],
        "compile": ["boolean"],
        "distributed": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(128,),
        activation="relu",
        likelihood="auto",
        architecture="mlp",
        image_shape=None,
        conv_channels=(32, 64),
        encoder=None,
        decoder=None,
        min_variance=1e-6,
        beta=1.0,
        kl_warmup_epochs=0,
        n_importance_samples=1,
        n_score_samples=32,
        max_iter=200,
        batch_size="auto",
        learning_rate_init="auto",
        learning_rate="constant",
        alpha=0.0,
        max_grad_norm=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        mixed_precision=False,
        compile=False,
        distributed=False,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.architecture = architecture
        self.image_shape = image_shape
        self.conv_channels = conv_channels
        self.encoder = encoder
        self.decoder = decoder
        self.min_variance = min_variance
        self.beta = beta
        self.kl_warmup_epochs = kl_warmup_epochs
        self.n_importance_samples = n_importance_samples
        self.n_score_samples = n_score_samples
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.max_grad_norm = max_grad_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.mixed_precision = mixed_precision
        self.compile = compile
        self.distributed = distributed
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting

    @with_callbacks
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the VAE on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. Missing entries (NaN; in DataFrames also None and
            pd.NA) are allowed: each row's likelihood is that of its observed
            entries, and the encoder sees which entries are observed.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : VAETransformer
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAETransformer
        >>> X = np.random.RandomState(0).normal(size=(100, 5))
        >>> vae = VAETransformer(max_iter=5, random_state=0).fit(X)
        >>> vae.n_iter_
        5
        """
        continuing = self.warm_start and hasattr(self, "module_")
        self._train(X, y, self.max_iter, continuing, early_stopping=self.early_stopping)
        return self

    @with_callbacks
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one pass over ``X``, continuing from the current weights.

        The first call builds the model (and fixes the number of features and the
        data scaling); later calls continue training it. This streams over data
        too large for memory, one chunk per call. Early stopping does not apply.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : VAETransformer
            The estimator, trained one more epoch.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAETransformer
        >>> X = np.random.RandomState(0).normal(size=(200, 5))
        >>> vae = VAETransformer(random_state=0)
        >>> for chunk in np.array_split(X, 4):
        ...     vae = vae.partial_fit(chunk)
        >>> vae.n_iter_
        4
        """
        self._train(X, y, 1, hasattr(self, "module_"), early_stopping=False)
        return self

    def _train(self, X, y, max_iter, continuing, early_stopping):
        group = collective(self.distributed)
        if self.distributed and self.compile:
            raise ValueError("compile=True is not supported with distributed=True yet.")
        device = local_device(self.device) if self.distributed else None
        device = device or resolve_device(self.device)
        if group.distributed and device.type == "cuda":
            torch.cuda.set_device(device)  # nccl's collectives run on the current device
        with self._transaction():
            raw = self._check_shard(group, X, reset=not continuing)
            if continuing:
                X = self._encode(raw)
                missing = group.any(missing_entries(X))
            else:
                X, missing = self._initialise(raw, group)
            settings = self._settings(max_iter, self._batch_rows(X.shape[0], group))
            seed = int(torch.randint(MAX_SEED, (1,), generator=self._generator))
            # Each rank shuffles its own shard and draws its own noise.
            generator = make_generator(seed + group.rank, device)
            data = self._training_data(X, device, settings.batch_size, early_stopping,
                                       generator)
            data.collective = group
            data.missing = missing
            if group.distributed:
                n_rows = X.shape[0] if data.train_rows is None else data.train_rows.shape[0]
                data.steps = max(group.all_gather(-(-n_rows // settings.batch_size)))
        context = self._init_callback_context(max_subtasks=max_iter)
        context.call_on_fit_task_begin(estimator=self, X=raw, y=y)
        hooks = [
            Progress(self.verbose),
            EpochCallbacks(self, context, self._fitted_attributes, raw, y),
        ]
        module = self.module_.to(device)
        move_optimizer_state(self._optimizer, device)
        try:
            result = train_module(
                module, self._optimizer, data, self._objective(), settings, generator,
                self._history, hooks,
            )
        finally:
            self.module_ = module.to("cpu")
            move_optimizer_state(self._optimizer, torch.device("cpu"))
        self._record(result, early_stopping)
        context.call_on_fit_task_end(estimator=self, X=raw, y=y, reconstruction_attributes={})
        self._report(result, max_iter, warn_unconverged=max_iter > 1)

    @contextlib.contextmanager
    def _transaction(self):
        """Undo what validation and set-up changed when they fail: a bad refit
        leaves the previously fitted model as it was."""
        state = dict(self.__dict__)
        generator = state.get("_generator")
        generator_state = generator.get_state() if generator is not None else None
        try:
            yield
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(state)
            if generator is not None:
                generator.set_state(generator_state)
            raise

    def _training_data(self, X, device, batch_size, early_stopping, generator):
        """The rows to train on, where training reads them."""
        # A float32 array is used in place (no copy); other input is copied once
        # to float32. Early stopping holds rows out by index, not by copying.
        x, chunk_rows = place_rows(to_tensor(X, "cpu"), device, batch_size)
        data = TrainingData(x, device, chunk_rows=chunk_rows)
        if early_stopping:  # row indices live where the data do
            rows = split_validation(x.shape[0], self.validation_fraction, generator)
            data.train_rows, data.valid_rows = (r.to(x.device) for r in rows)
        return data

    def _check_shard(self, group, X, reset):
        """Validate ``X``; under ``distributed=True``, also check that every
        rank's shard fits the others (the same columns and dtypes, some rows),
        raising the same error on every rank rather than leaving some waiting."""
        if not group.distributed:
            return self._check_input(X, reset)
        raw, error = None, None
        try:
            raw = self._check_input(X, reset)
        except (ValueError, TypeError) as exc:
            error = exc
        group.raise_if_any(error)
        shards = group.all_gather(_shard_summary(raw))
        for rank, shard in enumerate(shards):
            if shard[:2] != shards[0][:2]:
                group.raise_if_any(ShardError(
                    f"rank {rank}'s shard has columns {shard[0]} of dtypes {shard[1]}, "
                    f"rank 0's {shards[0][0]} of {shards[0][1]}; every rank must pass "
                    "the same columns."
                ))
        return raw

    def _initialise(self, raw, group=SINGLE):
        """Build a fresh module, optimiser and random streams for the validated
        input ``raw``; returns it coded as the float matrix the model sees, and
        whether that matrix has missing entries."""
        seed = group.broadcast(draw_seed(self.random_state))
        self._generator = make_generator(seed, "cpu")
        self._eval_seed = int(torch.randint(MAX_SEED, (1,), generator=self._generator))
        self._specs = merge_specs(group, column_specs(raw, self.likelihood, LIKELIHOODS))
        self._frame_output = is_dataframe(raw)
        options = {
            "min_variance": self.min_variance,
            "hidden_layer_sizes": self.hidden_layer_sizes,
            "activation": self.activation,
            "image_shape": self.image_shape,
            "conv_channels": self.conv_channels,
        }
        with seeded_torch(seed):
            observation = build_observation(raw, self._specs, options, group)
            X = encode(raw, observation, self._specs)
            # A model trained on incomplete rows sees the mask of observed
            # entries beside the values; on complete rows it needs no mask.
            missing = group.any(missing_entries(X))
            if missing:
                self._check_missing(X, observation)
            encoder, decoder = build_networks(
                self.architecture, observation, self.n_components, options,
                self.encoder, self.decoder, n_mask_inputs=X.shape[1] if missing else 0,
            )
            module = VAEModule(observation, encoder, decoder, self.n_components, missing)
        observation.fit_data(X, group)
        # Plug-ins that return the wrong shapes are named here, before training.
        module.check(torch.nan_to_num(to_tensor(X[:2], "cpu")), make_generator(0, "cpu"))
        self.module_ = module
        batch_size = self._settings(1, self._batch_rows(X.shape[0], group)).batch_size
        self._learning_rate = (auto_learning_rate(batch_size)
                               if self.learning_rate_init == "auto" else self.learning_rate_init)
        self._optimizer = make_optimizer(module, self._learning_rate, self.alpha)
        self._history = None
        return X, missing

    def _check_missing(self, X, observation):
        """Clear errors for missing entries a model cannot learn from: a column
        with no observed value, a likelihood that cannot score incomplete rows;
        a warning when almost nothing is observed."""
        counts = sum(np.isnan(X[start : start + 4096]).sum(axis=0)
                     for start in range(0, len(X), 4096))
        names = [spec.name for spec in self._specs]
        empty = [names[j] for j in np.flatnonzero(counts == len(X))]
        if empty:
            raise ValueError(
                f"Columns {empty} have no observed values in X (every entry is "
                "missing): there is nothing to learn about them. Drop them, or use "
                "VAEImputer(keep_empty_features=True)."
            )
        for lik, cols in zip(observation.likelihoods, observation.columns):
            if counts[cols].any() and not lik.supports_missing:
                raise ValueError(
                    f"likelihood {describe(type(lik))} cannot score rows with missing "
                    f"entries (columns {[names[j] for j in cols]} have some): implement "
                    "its log_prob_terms (see skvae.Likelihood)."
                )
        share = counts.sum() / X.size
        if share > 0.95:
            warnings.warn(
                f"{share:.1%} of the entries of X are missing; a model learns little "
                "from so few observed values.",
                UserWarning,
                stacklevel=4,
            )

    def _batch_rows(self, n_rows, group):
        """The rows ``batch_size`` is clipped to (or, when "auto", sized on):
        this shard's, or under ``batch_size="auto"`` the largest shard's, so that
        every rank takes the same batch size."""
        return max(group.all_gather(n_rows)) if self.batch_size == "auto" else n_rows

    def _objective(self):
        return Objective(self.beta, self.kl_warmup_epochs, self.n_importance_samples)

    def _settings(self, max_iter, n_samples):
        return TrainingSettings(
            max_iter=max_iter,
            batch_size=(auto_batch_size(n_samples) if self.batch_size == "auto"
                        else min(self.batch_size, n_samples)),
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            learning_rate=self.learning_rate,
            max_grad_norm=self.max_grad_norm,
            mixed_precision=self.mixed_precision,
            compile=self.compile,
        )

    def _fitted_attributes(self, record):
        """Attributes that make a copy of this estimator usable with the weights
        of ``record``'s epoch (for callbacks' ``fitted_estimator``)."""
        result = copy.deepcopy(record.result)
        module = copy.deepcopy(record.module).to("cpu")
        # Its own optimiser (the live one's state, on the copy's parameters) and
        # history, so that a checkpoint can go on training on its own.
        optimizer = make_optimizer(module, 1.0, self.alpha)  # its rates come from the state
        optimizer.load_state_dict(self._optimizer.state_dict())
        attributes = {"module_": module, "_optimizer": optimizer, "_history": result}
        attributes.update(self._fitted_curves(result, result.validation_scores))
        return attributes

    @staticmethod
    def _fitted_curves(result, monitored):
        return {
            "n_iter_": result.n_iter,
            "loss_curve_": list(result.loss_curve),
            "best_loss_": result.best_loss,
            "validation_scores_": list(result.validation_scores) if monitored else None,
            "best_validation_score_": result.best_validation_score if monitored else None,
        }

    def _record(self, result, early_stopping):
        self._history = result
        for name, value in self._fitted_curves(result, early_stopping).items():
            setattr(self, name, value)

    def _report(self, result, max_iter, warn_unconverged):
        if result.diverged:
            raise TrainingDivergedError(
                f"Training diverged: the loss became NaN or infinite in epoch "
                f"{result.n_iter + 1}. The weights of the last finite epoch were kept. "
                "Try a lower learning_rate_init, max_grad_norm (e.g. 10), or scaling "
                "the data (e.g. StandardScaler)."
            )
        if result.interrupted:
            warnings.warn(
                f"Training was interrupted after {result.n_iter} epochs; the estimator "
                "keeps the best weights so far and can be used.",
                UserWarning,
            )
        elif warn_unconverged and not (result.converged or result.stopped_by_hook):
            warnings.warn(
                f"VAETransformer stopped at max_iter={max_iter} epochs while the loss "
                "was still improving; consider raising max_iter.",
                ConvergenceWarning,
            )

    # ---------------------------------------------------------------- inference

    def _validate_input(self, X):
        """Validate ``X`` for a fitted model and code it as the float matrix the
        model sees."""
        return self._encode(self._check_input(X, reset=False))

    def _encode(self, raw):
        return encode(raw, self.module_.observation, self._specs)

    def _check_input(self, X, reset):
        """Validate ``X``: a DataFrame (checked column by column when coded), or
        an array of finite floats."""
        if sp.issparse(X):
            raise ValueError(
                "VAETransformer does not accept sparse matrices; convert with "
                "X.toarray()."
            )
        if is_dataframe(X):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[0] < 1:
                raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}).")
            if X.shape[1] < 1:
                raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}).")
        elif not reset and self._frame_output and not all(
            lik.numeric for lik in self.module_.observation.likelihoods
        ):
            raise ValueError(
                "This model was fitted on a DataFrame with categorical columns; pass a "
                f"DataFrame with the same {self.n_features_in_} columns, not a "
                f"{type(X).__name__}."
            )
        else:
            X = validate_data(self, X, reset=reset, dtype=(np.float64, np.float32),
                              ensure_all_finite="allow-nan")
        return X

    def _inference(self, dtype):
        """The fitted module for inference at ``dtype`` on the configured device."""
        device = resolve_device(self.device)
        module = self.module_
        if dtype != torch.float32 or device.type != "cpu":
            module = copy.deepcopy(module).to(device=device, dtype=dtype)
        return module.eval(), device

    def _apply(self, X, function, batch_size=EVAL_BATCH_SIZE):
        """``function(module, x)`` over row batches of ``X``, as NumPy of X's dtype."""
        dtype = torch.float32 if X.dtype == np.float32 else torch.float64
        module, device = self._inference(dtype)
        # The rows stay on the host and go to the device a batch at a time, so
        # inference needs no room for the whole input there.
        x = to_tensor(X, "cpu", dtype)
        missing = missing_entries(X)
        with torch.no_grad():
            out = batched(
                lambda rows: function(module, rows.to(device),
                                      observed(rows.to(device)) if missing else None),
                x, batch_size,
            )
        return out.cpu().numpy()

    def transform(self, X):
        """Encode ``X`` as the posterior mean of its latent code.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means; float32 for float32 input, float64 otherwise.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAETransformer
        >>> X = np.random.RandomState(0).normal(size=(100, 5))
        >>> vae = VAETransformer(n_components=3, max_iter=5, random_state=0).fit(X)
        >>> vae.transform(X[:4]).shape
        (4, 3)
        """
        check_is_fitted(self)
        X = self._validate_input(X)
        return self._apply(X, lambda module, x, mask: module.encode(x, mask)[0])

    def inverse_transform(self, X):
        """Decode latent codes back to the feature space (the decoder's mean).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, such as the output of ``transform``.

        Returns
        -------
        X_original : ndarray or DataFrame of shape (n_samples, n_features_in_)
            The decoder's mean for each code: for categorical columns the most
            probable category, for counts the mean rounded to an integer. A
            DataFrame with the original columns and dtypes when ``fit`` was given
            one.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAETransformer
        >>> X = np.random.RandomState(0).normal(size=(100, 5))
        >>> vae = VAETransformer(n_components=2, max_iter=5, random_state=0).fit(X)
        >>> vae.inverse_transform(np.zeros((1, 2))).shape
        (1, 5)
        """
        check_is_fitted(self)
        Z = self._validate_codes(X)
        out = self._apply(Z, lambda module, z, _: module.observation.mean(module.decode(z)))
        return decode(out, self.module_.observation, self._specs, self._frame_output)

    def _validate_codes(self, Z):
        Z = check_array(Z, dtype=(np.float64, np.float32), input_name="X")
        if Z.shape[1] != self.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} columns, but inverse_transform expects latent "
                f"codes with n_components={self.n_components} columns."
            )
        return Z

    def score_samples(self, X, n_importance_samples=None):
        """Lower bound on the log-likelihood log p(x) of each row.

        With one importance sample this is the ELBO; with ``K > 1`` it is the
        importance-weighted bound, which tightens towards log p(x) as ``K`` grows.
        The ``K`` latent draws are a scrambled Sobol sequence fixed when the model
        is fitted and shared by all rows, so the result is deterministic, does not
        depend on batching, and varies less than with independent draws.

        For a row with missing entries (NaN, or None and pd.NA in a DataFrame)
        this is the bound on the likelihood of its *observed* entries, log
        p(x_observed): missing entries contribute no term, so rows with different
        missing patterns are not comparable with one another.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        n_importance_samples : int, default=None
            Number of latent samples per row; ``None`` uses the estimator's
            ``n_score_samples``.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            The bound for each row, in nats, in the units of the original data.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAETransformer
        >>> X = np.random.RandomState(0).normal(size=(100, 5))
        >>> vae = VAETransformer(max_iter=5, random_state=0).fit(X)
        >>> vae.score_samples(X[:3], n_importance_samples=50).shape
        (3,)
        """
        check_is_fitted(self)
        X = self._validate_input(X)
        n_samples = self.n_score_samples if n_importance_samples is None else n_importance_samples
        if not (isinstance(n_samples, Integral) and n_samples >= 1):
            raise ValueError(
                f"n_importance_samples must be a positive integer; got {n_samples!r}."
            )
        noise = evaluation_noise(n_samples, self.n_components, self._eval_seed)
        objective = Objective(n_samples=n_samples)

        def bound(module, x, mask):
            return objective(module, x, noise.to(x.device, x.dtype), mask=mask).bound

        # Each row is decoded n_samples times: bound the rows per batch so that
        # memory does not grow with the number of importance samples.
        batch_size = max(1, EVAL_BATCH_SIZE // n_samples)
        return self._apply(X, bound, batch_size).astype(np.float64)

    def score(self, X, y=None):
        """Mean lower bound on the log-likelihood of the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            Mean of ``score_samples(X)``; higher is better.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAETransformer
        >>> X = np.random.RandomState(0).normal(size=(100, 5))
        >>> vae = VAETransformer(max_iter=5, random_state=0).fit(X)
        >>> isinstance(vae.score(X), float)
        True
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Draw new rows from the model: z from the prior, then x from p(x | z).

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.
        random_state : int, RandomState instance or None, default=None
            Seeds the draw; an int makes it reproducible.

        Returns
        -------
        X_new : ndarray or DataFrame of shape (n_samples, n_features_in_)
            The drawn rows: float64 for arrays (categorical columns hold the
            values seen in ``fit``); a DataFrame with the original columns, dtypes
            and categories when ``fit`` was given one.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAETransformer
        >>> X = np.random.RandomState(0).normal(size=(100, 5))
        >>> vae = VAETransformer(max_iter=5, random_state=0).fit(X)
        >>> np.array_equal(vae.sample(4, random_state=1), vae.sample(4, random_state=1))
        True
        """
        check_is_fitted(self)
        if not (isinstance(n_samples, Integral) and n_samples >= 1):
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        generator = make_generator(draw_seed(random_state), "cpu")
        module = self.module_.eval()
        with torch.no_grad():
            z = torch.randn((n_samples, self.n_components), generator=generator)
            x = module.observation.sample(module.decode(z), generator)
        return decode(x.numpy().astype(np.float64), module.observation, self._specs,
                      self._frame_output)

    # ------------------------------------------------------------ sklearn glue

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object's is the live __dict__
        # The callbacks' bookkeeping of a fit in progress (a checkpoint taken by a
        # callback is a copy made during fit) is not part of the model.
        for name in ("_callback_fit_ctx", "_skl_callbacks_to_teardown", "_parent_callback_ctx"):
            state.pop(name, None)
        return state

    @property
    def _n_features_out(self):
        return self.n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _shard_summary(X):
    """What must agree across the ranks of a distributed fit: column names,
    dtypes and the number of rows (checked to be positive by validation)."""
    if is_dataframe(X):
        return (tuple(map(str, X.columns)), tuple(map(str, X.dtypes)), X.shape[0])
    return (X.shape[1], str(X.dtype), X.shape[0])
