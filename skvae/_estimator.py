"""VAETransformer: the scikit-learn face of the VAE.

Its methods validate, delegate to the torch side (``_tables`` and
``_likelihoods`` for the columns, ``_modules`` for the networks, ``_elbo`` for
the objective, ``_training`` for the loop) and convert the results back to
NumPy. With ``_callbacks`` (scikit-learn's callback API) and ``_demo`` it is
one of the modules that import scikit-learn.
"""

import contextlib
import copy
import functools
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
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)

from ._callbacks import CallbackSupportMixin, EpochCallbacks, with_callbacks
from ._data import (
    EVAL_BATCH_SIZE,
    MAX_SEED,
    batch_slices,
    batched,
    dense_rows,
    draw_seed,
    eval_rows,
    evaluation_noise,
    is_positive_integer,
    make_generator,
    resolve_device,
    to_tensor,
)
from ._elbo import Objective
from ._covariates import drawn_rows, fill, given_rows
from ._faults import keep_reached
from ._fitting import FitRun, check_unchanged, choose_n_components, fitted_curves, report
from ._likelihoods import LIKELIHOODS, observed_mask
from ._modules import ACTIVATIONS, ARCHITECTURES
from ._persistence import STRUCTURAL, dump_state, load_state
from ._progress import Progress
from ._repr import DocLinkMixin
from ._tables import (
    as_pandas,
    check_sparse_values,
    decode,
    describe_columns,
    encode,
    enum_categories,
    from_pandas,
    is_dataframe,
    missing_entries,
    reads_input,
)
from ._training import (
    make_optimizer,
    optimizer_snapshot,
    restore_optimizer,
    snapshot,
)

class VAETransformer(
    CallbackSupportMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, DocLinkMixin,
    BaseEstimator,
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
    n_components : int or "auto", default=2
        Number of latent dimensions. ``"auto"`` lets the model choose: ``fit``
        first trains a model with ``min(n_features, 64)`` dimensions, counts
        the dimensions it uses (its ``active_components_``) and then trains the
        final model with that many (at least one), so it costs two fits. The
        chosen size is ``n_components_``. ``partial_fit`` cannot choose, so it
        needs an int (or a model already fitted with ``"auto"``). See the user
        guide's "Choosing n_components".
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
        - ``"zip"`` and ``"zinb"``: their zero-inflated forms (a learned
          probability of a structural 0 per entry, as in scVI), for counts
          with more zeros than the count model gives;
        - ``"discrete"``: whole numbers, each value of the training range a
          category of its own (heaped histograms), with geometric tails beyond;
        - ``"lognormal"``: a point mass at 0 and a Gaussian on ``log x``,
          for skewed or zero-heavy non-negative columns;
        - ``"auto"``: for DataFrame columns by dtype and range: bool:
          bernoulli; category, object or string: categorical; integer, or
          float holding whole numbers only: discrete when ``max - min < 100``;
          other numbers of 2 to 10 distinct values, each seen ten times on
          average: categorical; any other number: lognormal when no value is
          negative and at least 10% are 0 or the skewness exceeds 1 and the
          log reduces it, else gaussian. For an array, one reading for all
          its columns: negbinom when it is an integer array or a sparse
          matrix and all its values are non-negative whole numbers (a count
          matrix), else gaussian (a float array holding whole numbers stays
          gaussian). ``column_likelihoods_`` shows what was chosen.
          A category, object or string column that looks like free text or
          identifiers is refused: ``fit`` raises a ValueError naming it when
          it has more than 1,000 categories, or more than 50 that are more
          than half its observed (non-missing) entries, counting the
          categories left once ``min_frequency`` and ``max_categories`` have
          grouped the rare ones (the group as one). Drop such a column, group
          its rare values, or name its likelihood (``{"col":
          "categorical"}``) to keep it as it is.

        - your own: a subclass of :class:`~skvae.Likelihood`, or a factory that
          takes the number of columns and returns an instance, such as
          ``functools.partial(StudentT, df=4)`` (see the user guide's
          "Extending skvae").

        A single value applies to every column; a dict maps column names to
        likelihoods (the others get ``"auto"``); a list gives one per column (for
        arrays, such as a ColumnTransformer's output).
    handle_unknown : {"warn", "ignore", "error"}, default="warn"
        What ``transform``, ``score_samples``, ``score``, a warm start or
        ``partial_fit`` (and :class:`~skvae.VAEImputer`) do with a value of a
        categorical column that no training row had: ``"warn"`` treats it as
        a missing entry of its row (which then counts its other entries, and
        which the imputer fills in) and warns how many such entries each
        column had; ``"ignore"`` does the same silently; ``"error"`` raises a
        ValueError naming the column and the values. ``"warn"`` is the
        default because a category held by a few rows is often absent from
        a training fold, and a cross-validation should then go on and say
        so rather than fail.
    min_frequency : int, float or None, default=None
        Group a categorical column's rare categories into one slot, as
        :class:`~sklearn.preprocessing.OneHotEncoder` does: those seen in
        fewer than ``min_frequency`` training rows (an int), or than that
        share of the column's observed entries (a float in (0, 1)). The slot
        has one logit and one network input; a category of it keeps its own
        probability, the slot's times its share of the slot's training rows,
        so ``score_samples`` is still the log-probability of the real value.
        ``inverse_transform`` and imputation give the slot's most frequent
        category, ``sample`` draws one of its categories by training count.
        None (the default) groups nothing, as the model of every category
        is exact and a table with few categories gains nothing from grouping.
    max_categories : int or None, default=None
        Keep at most this many slots per categorical column, the group of
        infrequent categories counting as one (as in OneHotEncoder): the least
        frequent categories join the group (after ``min_frequency``'s). None
        (the default) sets no limit, for the same reason.
    count_depth : {"auto", "observed", "none"}, default="auto"
        How the count likelihoods (``"poisson"``, ``"negbinom"``, ``"zip"``,
        ``"zinb"``) treat each row's total over the columns of one of them,
        its depth (a cell's library size, a document's length). ``"observed"``
        takes it as given, as scVI does: the decoder gives each column's
        share, a count's mean is the total times its share, and the encoder
        sees the counts scaled to the typical training total, so the codes
        describe the composition of a row and not its depth. The total gets
        a model of its own, a log-normal (fitted on the training totals)
        rounded to integers, and ``score_samples`` is the log-probability of
        the total under it plus that of the counts given it.
        ``inverse_transform`` gives the means at the typical total; ``sample``
        draws a total, then the counts. Rows with missing count entries have
        no known total: ``"observed"`` refuses them. ``"none"``: the decoder
        gives each count's mean, so a code must also carry the depth.
        ``"auto"`` (the default) is ``"observed"`` for a block of at least
        20 count columns with no missing entry in training, else ``"none"``:
        over a few columns the total is part of what the model should
        explain, over many (genes, words) it is mostly technical. On
        simulated counts of 5 cell types over 500 genes, depths spread by 0.5
        in log, a linear regression of the log depth on held-out cells' codes
        had R^2 0.61 with ``"none"`` and 0.01 with ``"observed"``, and the
        silhouette of the cell types rose from 0.26 to 0.32; on 700 PBMC
        cells, R^2 fell from 0.91 to 0.66 (the types themselves differ in
        depth) and the silhouette rose from 0.13 to 0.17, held-out scores
        within a nat or two (``benchmarks/bench_counts.py``, three seeds; see
        the user guide's "Choosing a likelihood"). Other likelihoods ignore
        it.
    covariates : list of str or int, default=None
        Columns of X that are covariates (batch, site, donor, a condition):
        DataFrame column names, or positions for an array. A covariate is an
        input, not modelled: the decoder always gets it beside the latent
        code, so the code need not carry its effect: ``transform`` gives codes
        from which much of the covariates' effects is gone (batch correction;
        measure how much, as ``benchmarks/bench_covariates.py`` does).
        ``score_samples`` is then log p(x | covariates).
        ``inverse_transform(Z, covariates=...)`` and ``sample(n,
        covariates=...)`` decode under the covariate values given
        (counterfactuals, conditional rows); ``sample(n)`` without them draws
        them from the training rows. Categories, strings, bools and whole
        numbers of at most 10 values are categorical covariates (one-hot),
        other numbers numeric (standardised). A covariate must be known for
        every row: a missing value, or a category not seen in ``fit``, is
        refused. Not supported yet with sparse input and
        ``architecture="conv"``.
    encode_covariates : bool, default=False
        Whether the encoder also gets the covariates. False, as scVI's
        default: the code is inferred from the modelled columns alone, so
        rows of different batches with the same content get the same code.
        True lets the encoder correct for a covariate's effect on the input,
        at the risk of codes that carry it.
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
    min_variance : float or "auto", default="auto"
        Floor on each Gaussian feature's variance, in units of that feature's
        training variance: it keeps a feature the decoder can predict exactly
        from driving the likelihood to infinity. ``"auto"`` sets it feature by
        feature: ``1e-3`` where training values repeat (more than a tenth of
        them equal another: counts, grey levels, rounded measurements, a value
        shared by many rows, where collapsing onto the repeated values would
        score held-out rows thousands of nats too low), ``1e-6`` where nearly
        all values are distinct (precise continuous data, which then reach
        PCA's or FactorAnalysis's likelihood). A float applies to every
        feature. Either way, features recorded on a grid get at least the
        variance of a uniform spread over the grid step, ``gap**2 / 12``, and a
        constant training feature at least ``1e-3`` in its own units.
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
        estimate log p(x), and with which ``early_stopping`` scores its
        held-out rows each epoch; 1 gives the ELBO. With early stopping the
        held-out rows then cost about ``n_score_samples`` decoder passes each
        per epoch: lower it to make a long early-stopped fit cheaper.
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
    alpha : float, default=3e-3
        L2 penalty on the networks' weights (Adam weight decay; the
        likelihood's own parameters are not penalised). The default curbs the
        overfitting of images and small tables (on 5,000 MNIST digits, a
        Gaussian model's held-out bound rose from 386 to 693 nats per image);
        0 turns it off (see the user guide's training page).
    max_grad_norm : float or None, default=None
        Clip the gradient's global norm to this value at each step.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the rows, stop when their score
        has not improved by ``tol`` for the patience of ``n_iter_no_change``,
        and keep the weights that scored best on them. The held-out rows are
        scored with the bound ``score`` reports, the importance-weighted bound of
        ``n_score_samples`` samples (with random draws fixed for the whole fit,
        so epochs compare fairly, where ``score`` uses its own fixed draws):
        the single-sample ELBO can stall while that bound still improves
        (see the user guide's "Training"). Beyond 2,048 held-out rows, a
        fixed random sample of 2,048 of them is scored each epoch.
        ``"auto"`` turns it on when a column has a count likelihood
        (``"poisson"``, ``"negbinom"``, ``"zip"``, ``"zinb"``), off otherwise:
        on 560 PBMC cells, 200 epochs without it scored the training cells 85
        nats per cell above held-out ones, and stopping early (after about 110
        epochs) scored the held-out cells 15 nats higher (medians of three
        seeds, ``benchmarks/bench_counts.py``).
    validation_fraction : float, default=0.1
        Share of rows held out when ``early_stopping`` is on.
    n_iter_no_change : int, default=10
        Patience: epochs without improvement (of the training loss, or of the
        validation score with ``early_stopping``) before training stops, but
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
        rows per rank, and the training loss and validation score are averaged
        over ranks, so early stopping decides once for all. (With
        ``min_variance="auto"``, repeated values are counted within each
        rank's shard and the counts summed: a feature whose values repeat
        only across shards can get the continuous floor.) Every rank ends with
        the same fitted estimator, on the CPU. Under ``device="auto"`` a rank
        trains on the GPU that ``LOCAL_RANK`` names when CUDA is available.
        See the user guide's "Scaling out".
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, the validation split and the
        reparameterisation noise. An int makes ``fit`` reproducible. The global
        NumPy and torch random states are never touched.
    bound_outputs : bool, default=True
        Keep what ``inverse_transform``, ``sample`` and
        :class:`~skvae.VAEImputer` return within each numeric column's training
        support: between its smallest and largest training value (a column
        constant where observed stays that constant), and whole numbers where
        the training values all are. Draws outside are drawn again from the
        same p(x_j | z), so ``sample`` follows the model truncated to the
        range instead of piling rows on its ends; means and imputations are
        moved to the nearest end. False returns the model's own draws and means,
        whose distribution is exactly the density ``score_samples`` reports.
        See the user guide's "Tables and images".
    verbose : int, default=0
        0 prints nothing; otherwise a progress bar on a terminal, or in logs
        (no terminal) lines: with 1 the first and last epochs and one line
        every 2 seconds between them, with 2 or more one line per epoch. To watch, log, checkpoint or stop training at each epoch, pass
        callbacks to ``set_callbacks`` (scikit-learn's callback API; see the user
        guide's "Extending skvae").

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained VAE (on the CPU).
    n_components_ : int
        Number of latent dimensions of the fitted model: ``n_components``, or
        the size chosen under ``n_components="auto"``.
    kl_per_component_ : ndarray of shape (n_components_,)
        How much each latent dimension is used: the mean over the rows of the
        last ``fit`` (or the chunk of the last ``partial_fit``) of KL(q(z_j | x)
        || N(0, 1)), in nats. It sums to the mean KL term of the ELBO on those
        rows, and bounds from above the information (in nats) that dimension
        ``j`` carries about a row. A dimension near 0 is unused: its code is
        the prior whatever the row. It plays the part of PCA's
        ``explained_variance_``; ``kl_per_component_ / kl_per_component_.sum()``
        that of ``explained_variance_ratio_``. Unlike PCA's, the dimensions are
        not sorted.
    active_components_ : ndarray of bool of shape (n_components_,)
        The dimensions the model uses: those whose ``kl_per_component_``
        exceeds 0.1 nats. (Dimensions the model has given up are pushed to the
        prior slowly and keep a few hundredths of a nat at the end of a fit.)
    n_iter_ : int
        Number of epochs run.
    loss_curve_ : list of float
        Mean training loss (negative ELBO, nats per row) of each epoch.
    best_loss_ : float
        Lowest value in ``loss_curve_``.
    validation_scores_ : list of float or None
        Mean validation score (the bound ``score`` reports) of each epoch
        with ``early_stopping``, else None.
    best_validation_score_ : float or None
        Highest value in ``validation_scores_`` with ``early_stopping``, else None.
    column_likelihoods_ : dict
        What the model makes of each input column, by name (``feature_names_in_``,
        or the column's index for arrays): ``{"likelihood": ..., "support":
        ...}``, where ``likelihood`` is what ``likelihood="auto"`` (or your
        setting) chose and ``support`` is the categories of a categorical
        column, else ``(low, high)``, the training range that outputs are kept
        in under ``bound_outputs`` (``"whole_numbers"`` says whether draws are
        rounded). ``pandas.DataFrame(column_likelihoods_).T`` shows it as a
        table.
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
    >>> vae.kl_per_component_.shape  # nats per latent dimension
    (2,)
    >>> auto = VAETransformer(n_components="auto", max_iter=20, random_state=0).fit(X)
    >>> auto.transform(X).shape[1] == auto.n_components_
    True
    """

    # The weights a search or a pipeline is given for ``fit`` also weight the
    # held-out rows' ``score`` by default, as scikit-learn's searches do without
    # metadata routing. (A request left unset, scikit-learn's default, would make
    # a routed search that passes ``sample_weight`` fail until
    # ``set_score_request`` is called; one set to False would make a routed
    # ``Pipeline.score`` refuse the ``sample_weight=None`` it always passes on.)
    __metadata_request__score = {"sample_weight": True}

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [StrOptions(set(LIKELIHOODS) | {"auto"}), dict, list, tuple, callable],
        "handle_unknown": [StrOptions({"warn", "ignore", "error"})],
        "min_frequency": [Interval(Integral, 1, None, closed="left"),
                          Interval(RealNotInt, 0, 1, closed="neither"), None],
        "max_categories": [Interval(Integral, 1, None, closed="left"), None],
        "count_depth": [StrOptions({"auto", "observed", "none"})],
        "covariates": [None, list, tuple, str, Integral],
        "encode_covariates": ["boolean"],
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "image_shape": [tuple, list, None],
        "conv_channels": [tuple, list],
        "encoder": [callable, None],
        "decoder": [callable, None],
        "min_variance": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
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
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [str],
        "mixed_precision": ["boolean"],
        "compile": ["boolean"],
        "distributed": ["boolean"],
        "random_state": ["random_state"],
        "bound_outputs": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(128,),
        activation="relu",
        likelihood="auto",
        handle_unknown="warn",
        min_frequency=None,
        max_categories=None,
        count_depth="auto",
        covariates=None,
        encode_covariates=False,
        architecture="mlp",
        image_shape=None,
        conv_channels=(32, 64),
        encoder=None,
        decoder=None,
        min_variance="auto",
        beta=1.0,
        kl_warmup_epochs=0,
        n_importance_samples=1,
        n_score_samples=32,
        max_iter=200,
        batch_size="auto",
        learning_rate_init="auto",
        learning_rate="constant",
        alpha=3e-3,
        max_grad_norm=None,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        mixed_precision=False,
        compile=False,
        distributed=False,
        random_state=None,
        bound_outputs=True,
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.handle_unknown = handle_unknown
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.count_depth = count_depth
        self.covariates = covariates
        self.encode_covariates = encode_covariates
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
        self.bound_outputs = bound_outputs
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting

    @with_callbacks
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Train the VAE on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. Missing entries (NaN; in DataFrames also None and
            pd.NA) are allowed: each row's likelihood is that of its observed
            entries, and the encoder sees which entries are observed.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in the objective: a row of weight 2
            counts as that row twice (in training and, with ``early_stopping``,
            in the validation score), one of weight 0 not at all. The data's
            scaling statistics (standardisation, variance floors, categories)
            are read from the rows unweighted. None: every row weighs 1.

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
        self._train(X, y, self.max_iter, continuing, early_stopping=self.early_stopping,
                    sample_weight=sample_weight)
        return self

    @with_callbacks
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
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
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row of the chunk in the objective, as
            in ``fit``. The data's
            scaling statistics (standardisation, variance floors, categories)
            are read from the rows unweighted. None: every row weighs 1.

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
        continuing = hasattr(self, "module_")
        if self.n_components == "auto" and not continuing:
            raise ValueError(
                'n_components="auto" needs fit, which can train more than once: '
                "partial_fit sees one chunk at a time. Pass an int, or call partial_fit "
                'on a model already fitted with n_components="auto".'
            )
        self._train(X, y, 1, continuing, early_stopping=False, sample_weight=sample_weight)
        return self

    def _train(self, X, y, max_iter, continuing, early_stopping, sample_weight=None):
        run = FitRun(self, max_iter, early_stopping)
        with run.agreement.deferring_interrupts(), self._transaction(run):
            raw = run.check_shard(functools.partial(self._check_input, reset=not continuing), X)
            if continuing:
                check_unchanged(self, self._fit_params)
                run.resume(raw, self.module_, self._specs, self._generator, self._optimizer,
                           self._history)
            else:
                n_components = self.n_components
                if n_components == "auto":
                    n_components = choose_n_components(self, raw, y, sample_weight)
                self._build(run, raw, n_components)
            run.prepare(raw, sample_weight)
            self._optimizer = run.optimizer
            # An error while training (a callback's, say) keeps the epochs reached
            # or undoes the fit, whichever loses less (see keep_reached): a
            # Ctrl-C does not reach here (training stops and keeps its weights).
            context = run.agreed(self._init_callback_context, max_subtasks=max_iter)
            run.agreed(context.call_on_fit_task_begin, estimator=self, X=raw, y=y)
            hooks = [
                Progress(self.verbose),
                EpochCallbacks(self, context,
                               lambda record: self._fitted_attributes(record, run), raw, y),
            ]
            try:
                result = run.train(hooks)
            finally:
                self.module_ = run.module
        self._history = result
        vars(self).update(fitted_curves(result, run.early_stopping), **run.latent_usage())
        run.agreed(context.call_on_fit_task_end, estimator=self, X=raw, y=y,
                   reconstruction_attributes={}, interrupt=False)
        report(result, max_iter, warn_unconverged=max_iter > 1,
               monitored=run.data.monitored)

    def _build(self, run, raw, n_components):
        """A fresh model with ``n_components`` latent dimensions for the
        validated input ``raw``, built by ``run`` and kept as the fitted one."""
        run.build(raw, n_components)
        self.n_components_ = n_components
        self._frame_output = is_dataframe(raw)
        self.module_, self._specs, self._structure = run.module, run.specs, run.structure
        self._generator, self._eval_seed = run.generator, run.eval_seed
        self._covariate_draws = run.covariate_rows
        self._fit_params = {name: copy.deepcopy(getattr(self, name)) for name in STRUCTURAL}
        self._history = None

    @contextlib.contextmanager
    def _transaction(self, run=None):
        """Undo what validation, set-up and training changed when they fail: a
        bad refit leaves the previously fitted model as it was, including the
        weights and optimiser state a warm start trains in place. An error
        after training has reached more epochs than the model had (``run``'s)
        keeps them instead (see :func:`~skvae._faults.keep_reached`)."""
        state = dict(self.__dict__)
        generator = state.get("_generator")
        generator_state = generator.get_state() if generator is not None else None
        module, optimizer = state.get("module_"), state.get("_optimizer")
        weights = snapshot(module) if module is not None else None
        if optimizer is not None:
            moments = optimizer_snapshot(optimizer)
            settings = [{key: value for key, value in group.items() if key != "params"}
                        for group in optimizer.param_groups]
        try:
            yield
        except BaseException as error:  # a Ctrl-C during set-up too
            kept = keep_reached(run, state, error) if run is not None else None
            if kept is not None:
                self.__dict__.update(kept)
                raise
            self.__dict__.clear()
            self.__dict__.update(state)
            if generator is not None:
                generator.set_state(generator_state)
            if weights is not None:
                module.to("cpu").load_state_dict(weights)
            if optimizer is not None:
                restore_optimizer(optimizer, moments)
                for group, saved in zip(optimizer.param_groups, settings):
                    group.update(saved)
            raise

    def _as_fitted_library(self, out):
        """``out`` (decoded rows) as a DataFrame of ``fit``'s input's library
        when that was not pandas, with its Enum columns."""
        return from_pandas(out, getattr(self, "_frame_library", None),
                           getattr(self, "_frame_enums", None))

    def _fitted_attributes(self, record, run):
        """Attributes that make a copy of this estimator usable with the weights
        of ``record``'s epoch of ``run`` (for callbacks' ``fitted_estimator``),
        with how much each latent dimension is used on this process's rows."""
        result = copy.deepcopy(record.result)
        module = copy.deepcopy(record.module).to("cpu")
        usage = run.latent_usage(module)
        # Its own optimiser (the live one's state, on the copy's parameters) and
        # history, so that a checkpoint can go on training on its own.
        optimizer = make_optimizer(module, 1.0, self.alpha)  # its rates come from the state
        optimizer.load_state_dict(self._optimizer.state_dict())
        attributes = {"module_": module, "_optimizer": optimizer, "_history": result}
        attributes.update(fitted_curves(result, result.validation_scores))
        attributes.update(usage)
        return attributes

    # ---------------------------------------------------------------- inference

    @reads_input()
    def _check_input(self, X, reset):
        """Validate ``X``: a DataFrame (checked column by column when coded), or
        an array of finite floats. DataFrames of other libraries (polars, say)
        are read as pandas ones; the library of ``fit``'s is remembered, for
        the frames that ``inverse_transform`` and ``sample`` return. Input that
        is neither (strings in an array, an AnnData), and a DataFrame without
        rows or columns, is refused by ``reads_input``, saying what to pass."""
        enums = enum_categories(X) if reset else None
        X, library = as_pandas(X)
        if reset:
            self._frame_library = library
            self._frame_enums = enums
        if sp.issparse(X):  # read a batch at a time; other formats become CSR once
            X = validate_data(self, X, reset=reset, accept_sparse=("csr", "csc"),
                              dtype=(np.float64, np.float32), ensure_all_finite=False)
            check_sparse_values(X)
            return X
        if is_dataframe(X):
            validate_data(self, X, reset=reset, skip_check_array=True)
        elif not reset and self._frame_output and not all(
            lik.numeric for lik in self.module_.observation.likelihoods
        ):
            raise ValueError(
                "This model was fitted on a DataFrame with categorical columns; pass a "
                f"DataFrame with the same {self.n_features_in_} columns, not a "
                f"{type(X).__name__}."
            )
        else:  # integer arrays keep their dtype: "auto" reads them as counts
            integer = np.dtype(getattr(X, "dtype", np.float64)).kind in "iu"
            X = validate_data(self, X, reset=reset,
                              dtype=None if integer else (np.float64, np.float32),
                              ensure_all_finite="allow-nan")
        return X

    def _apply(self, X, function, batch_size=EVAL_BATCH_SIZE):
        """``function(module, x)`` over row batches of ``X``, as NumPy of X's dtype."""
        dtype = torch.float32 if X.dtype == np.float32 else torch.float64
        module, device = inference_module(self, dtype)
        # The rows stay on the host and go to the device a batch at a time, so
        # inference needs no room for the whole input there.
        x = to_tensor(X, "cpu", dtype)
        batch_size = dense_rows(X, batch_size)  # sparse rows: a dense batch stays small
        mask = observed_mask(missing_entries(X))
        with torch.no_grad():
            out = batched(lambda rows: function(module, rows.to(device), mask(rows.to(device))),
                          x, batch_size)
        return out.cpu().numpy()

    def transform(self, X):
        """Encode ``X`` as the posterior mean of its latent code.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components_)
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
        X = coded_rows(self, X)
        return self._apply(X, lambda module, x, mask: module.encode(x, mask)[0])

    def inverse_transform(self, X, covariates=None):
        """Decode latent codes back to the feature space (the decoder's mean).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components_)
            Latent codes, such as the output of ``transform``.
        covariates : dict, DataFrame or array-like, default=None
            For a model fitted with ``covariates``, their values to decode
            under (required): a dict giving each covariate one value or one
            per row, a DataFrame holding the covariate columns, or an array of
            them in order. The codes of rows of batch A decoded with batch B
            give the rows as if measured in batch B. The output's covariate
            columns hold these values.

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
        observation, k = self.module_.observation, Z.shape[1]
        rows = given_rows(observation, column_names(self), covariates, len(Z),
                          "inverse_transform")
        # Codes and coded covariate rows side by side, batched together.
        coded = Z if rows is None else np.hstack([Z, rows.astype(Z.dtype)])
        out = self._apply(coded, lambda module, zx, _: module.observation.mean(
            module.decode(zx[:, :k], module.conditions(zx[:, k:])), self.bound_outputs))
        return self._as_fitted_library(decoded_rows(self, fill(out, rows, observation)))

    @reads_input("codes")
    def _validate_codes(self, Z):
        Z = check_array(Z, dtype=(np.float64, np.float32), input_name="X")
        if Z.shape[1] != self.module_.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} columns, but inverse_transform expects latent "
                f"codes with n_components={self.module_.n_components} columns."
            )
        return Z

    def score_samples(self, X, n_importance_samples=None):
        """Lower bound on the log-likelihood log p(x) of each row.

        With one importance sample this is the ELBO; with ``K > 1`` it is the
        importance-weighted bound, which tightens towards log p(x) as ``K`` grows.
        The ``K`` latent draws are a scrambled Sobol sequence fixed when the model
        is fitted and shared by all rows, so the result is deterministic, does not
        depend on batching, and varies less than with independent draws. It is a
        bound in expectation over the draws: with a small ``K`` one row's value
        can land above its log p(x) (by a nat or two at ``K=1``), while the mean
        over many rows stays below.

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
        X = coded_rows(self, X)
        n_samples = self.n_score_samples if n_importance_samples is None else n_importance_samples
        if not is_positive_integer(n_samples):
            raise ValueError(
                f"n_importance_samples must be a positive integer; got {n_samples!r}."
            )
        noise = evaluation_noise(n_samples, self.module_.n_components, self._eval_seed)
        objective = Objective(n_samples=n_samples)

        def bound(module, x, mask):
            return objective(module, x, noise.to(x.device, x.dtype), mask=mask).bound

        # Each row is decoded n_samples times: bound the rows per batch so that
        # memory does not grow with the number of importance samples.
        batch_size = eval_rows(n_samples, X.shape[1])
        scores = self._apply(X, bound, batch_size).astype(np.float64)
        overflowed = ~np.isfinite(scores)
        if overflowed.any() and X.dtype == np.float32:
            # Rows far outside the data overflow float32 (a squared error over
            # 3.4e38); their bound is finite in float64.
            scores[overflowed] = self._apply(X[overflowed].astype(np.float64), bound,
                                             batch_size)
        return scores

    def score(self, X, y=None, sample_weight=None):
        """Mean lower bound on the log-likelihood of the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row: the score is then the weighted
            mean, in which a row of weight 2 counts as that row twice, as in
            ``fit``. A search (such as
            :class:`~sklearn.model_selection.GridSearchCV`) given
            ``sample_weight`` passes each held-out fold its weights here;
            with metadata routing this is requested by default, and
            ``set_score_request(sample_weight=False)`` scores the folds
            unweighted. None: every row weighs 1.

        Returns
        -------
        score : float
            Mean of ``score_samples(X)`` (weighted by ``sample_weight``);
            higher is better.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAETransformer
        >>> X = np.random.RandomState(0).normal(size=(100, 5))
        >>> vae = VAETransformer(max_iter=5, random_state=0).fit(X)
        >>> isinstance(vae.score(X), float)
        True
        """
        check_is_fitted(self)
        if sample_weight is not None:
            # (refusing negative weights and weights that are all zero)
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                 ensure_non_negative=True)
        return float(np.average(self.score_samples(X), weights=sample_weight))

    def sample(self, n_samples=1, random_state=None, *, noise=True, covariates=None):
        """Draw new rows from the model: z from the prior, then x from p(x | z).

        With ``noise=False`` the rows are the decoder's mean at the drawn codes
        instead of draws from p(x | z): what ``inverse_transform`` returns for
        them. Use it for images, where independent noise on every pixel hides
        the picture; keep the draws for synthetic tables and wherever the
        spread of the data matters.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.
        random_state : int, RandomState instance or None, default=None
            Seeds the draw; an int makes it reproducible.
        noise : bool, default=True
            Whether to draw each row from the likelihood p(x | z) (True), or to
            return the decoder's mean at z (False): for categorical columns the
            most probable category, for counts the mean rounded to an integer,
            as ``inverse_transform``. The codes z are the same either way for
            the same ``random_state``.
        covariates : dict, DataFrame or array-like, default=None
            For a model fitted with ``covariates``, the values to draw rows
            under (as in ``inverse_transform``): every row carries them, and
            its other columns follow p(x | covariates), so ``{"churn":
            "Yes"}`` gives rows of churned customers. None draws them, row by
            row, from the training rows' values.

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
        >>> vae.sample(4, random_state=1, noise=False).shape  # decoder means
        (4, 5)
        """
        check_is_fitted(self)
        if not is_positive_integer(n_samples):
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        if not isinstance(noise, (bool, np.bool_)):
            raise ValueError(f"noise must be True or False; got {noise!r}.")
        # Two streams, so that the codes do not depend on ``noise``: one for the
        # codes and one for the draws from the likelihood.
        codes = make_generator(draw_seed(random_state), "cpu")
        generator = make_generator(int(torch.randint(MAX_SEED, (1,), generator=codes)), "cpu")
        module = self.module_.eval()
        # A batch at a time into the output: memory beyond the result stays
        # bounded however many rows are drawn.
        out = np.empty((n_samples, module.observation.n_features))
        given = (given_rows(module.observation, column_names(self), covariates, n_samples,
                            "sample") if covariates is not None else
                 drawn_rows(module.observation, self.__dict__.get("_covariate_draws"),
                            n_samples, codes))
        with torch.no_grad():
            for rows in batch_slices(n_samples, EVAL_BATCH_SIZE):
                n_rows = rows.stop - rows.start
                z = torch.randn((n_rows, module.n_components), generator=codes)
                params = module.decode(z, None if given is None else module.conditions(
                    torch.from_numpy(given[rows]).to(z.dtype)))
                if noise:
                    x = module.observation.sample(params, generator, self.bound_outputs)
                else:
                    x = module.observation.mean(params, self.bound_outputs)
                out[rows] = x.numpy()
        return self._as_fitted_library(decoded_rows(self, fill(out, given, module.observation)))

    # ------------------------------------------------------------ sklearn glue

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object's is the live __dict__
        # The callbacks' bookkeeping of a fit in progress (a checkpoint taken by a
        # callback is a copy made during fit) is not part of the model.
        for name in ("_callback_fit_ctx", "_skl_callbacks_to_teardown", "_parent_callback_ctx"):
            state.pop(name, None)
        # Plain data only (no torch objects): see the user guide's "Saving models".
        return dump_state(state)

    def __setstate__(self, state):
        # The optimiser's settings come with its saved state.
        state = load_state(state, lambda module: make_optimizer(module, 1e-3, 0.0), type(self))
        super().__setstate__(state)

    @property
    def column_likelihoods_(self):
        """dict: each input column's likelihood and support (see the class's
        Attributes)."""
        check_is_fitted(self)
        return describe_columns(self.module_.observation, self._specs)

    @property
    def _n_features_out(self):
        # The fitted size, whatever set_params has changed since.
        return self.module_.n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        # DataFrames with categorical (category, string, object or bool)
        # columns; arrays of strings are refused, so not ``string``.
        tags.input_tags.categorical = True
        tags.input_tags.sparse = True  # scipy CSR and CSC, read a batch at a time
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags



# ------------------------------------------------------ the internal surface
# What other modules of the package (VAEImputer, skvae.dask) need of a fitted
# estimator beyond its public methods; they use these rather than its private
# attributes.


def coded_rows(estimator, X):
    """``X`` validated for the fitted ``estimator`` and coded as the float
    matrix its model sees (NaN where entries are missing)."""
    raw = estimator._check_input(X, reset=False)
    return encode(raw, estimator.module_.observation, estimator._specs, estimator.handle_unknown)


def column_names(estimator):
    """The names of the columns ``fit`` was given (positions for an array)."""
    return [spec.name for spec in estimator._specs]


def decoded_rows(estimator, values):
    """The model's float matrix ``values`` as rows like those ``fit`` was
    given: an array, or a pandas DataFrame with fit's columns and dtypes."""
    return decode(values, estimator.module_.observation, estimator._specs,
                  estimator._frame_output)


def inference_module(estimator, dtype):
    """The fitted module of ``estimator`` in evaluation mode at the torch
    ``dtype`` on its configured device (a copy unless that is the trained one's
    float32 on the CPU), and that device."""
    device = resolve_device(estimator.device)
    module = estimator.module_
    if dtype != torch.float32 or device.type != "cpu":
        module = copy.deepcopy(module).to(device=device, dtype=dtype)
    return module.eval(), device


def pandas_output(estimator):
    """``estimator``, or, if it was fitted on a DataFrame of another library
    than pandas (polars, say), a shallow copy whose ``inverse_transform`` and
    ``sample`` return pandas DataFrames (Enum columns as pandas categoricals)."""
    if getattr(estimator, "_frame_library", None) in (None, "pandas"):
        return estimator
    estimator = copy.copy(estimator)
    estimator._frame_library = None
    estimator._frame_enums = None
    return estimator
