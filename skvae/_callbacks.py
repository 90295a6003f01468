"""Per-epoch callbacks: scikit-learn's callback API, adapted to the training loop.

Where the installed scikit-learn has :mod:`sklearn.callback` (1.9 and later),
``VAETransformer`` takes its callbacks through ``set_callbacks`` (its
``ProgressBar`` and ``ScoringMonitor`` included) and each epoch is a task of
``fit``. Elsewhere a minimal stand-in with the same method and hook names is
used, so a callback written against the protocol below works with either:

* ``setup(estimator, context)`` and ``teardown(estimator, context)``, once per
  ``fit`` (or ``partial_fit``) call;
* ``on_fit_task_begin(estimator, context, **kwargs)`` and
  ``on_fit_task_end(estimator, context, **kwargs) -> bool``, for the whole fit
  (``context.task_name == "fit"``) and for each epoch (``"epoch"``); a True from
  an epoch's ``on_fit_task_end`` stops training after that epoch.

The keyword arguments a hook declares (keyword-only) are filled in: ``X`` and
``y`` (what ``fit`` was given), ``metadata`` (None: ``fit``'s
``sample_weight`` is not passed on) and ``fitted_estimator``: a copy of the
estimator holding the weights of that moment, with ``n_iter_``, ``loss_curve_``, ``best_loss_`` and, with early
stopping, ``validation_scores_`` so far, and ``kl_per_component_`` and
``active_components_`` of its weights; built only when a hook asks for it.
scikit-learn's ``ScoringMonitor`` therefore scores each epoch when ``fit`` gets
a ``y`` (as in a Pipeline before a classifier).
"""

import copy
import functools
import inspect

try:
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # scikit-learn < 1.9
    CallbackSupportMixin = None

HOOK_ARGUMENTS = ("X", "y", "metadata", "fitted_estimator")


class MinimalContext:
    """A task of ``fit`` (the whole fit, or an epoch), for callbacks where
    :mod:`sklearn.callback` is missing."""

    def __init__(self, callbacks, task_name="fit", task_id=0, max_subtasks=0, parent=None):
        self._callbacks = callbacks
        self.task_name, self.task_id = task_name, task_id
        self.max_subtasks, self.parent = max_subtasks, parent
        self._n_children = 0

    def subcontext(self, task_name="", max_subtasks=0):
        child = MinimalContext(self._callbacks, task_name, self._n_children, max_subtasks, self)
        self._n_children += 1
        return child

    def _call(self, estimator, hook, **kwargs):
        stop = False
        evaluated = {}
        for callback in self._callbacks:
            function = getattr(callback, hook)
            wanted = [
                p.name for p in inspect.signature(function).parameters.values()
                if p.kind == p.KEYWORD_ONLY and p.name in HOOK_ARGUMENTS
            ]
            for name in wanted:
                if name not in evaluated:
                    value = kwargs.get(name)
                    if name == "fitted_estimator":
                        value = kwargs.get("reconstruction_attributes")
                        value = _fitted_copy(estimator, value() if callable(value) else value)
                    evaluated[name] = value() if callable(value) else value
            stop = bool(function(estimator, self, **{n: evaluated[n] for n in wanted})) or stop
        return stop

    def call_on_fit_task_begin(self, *, estimator, **kwargs):
        self._call(estimator, "on_fit_task_begin", **kwargs)
        return self

    def call_on_fit_task_end(self, *, estimator, **kwargs):
        return self._call(estimator, "on_fit_task_end", **kwargs)


def _fitted_copy(estimator, attributes):
    if attributes is None:
        return None
    fitted = copy.copy(estimator)
    for key, value in attributes.items():
        setattr(fitted, key, value)
    return fitted


class MinimalCallbackSupportMixin:
    """``set_callbacks`` where :mod:`sklearn.callback` is missing."""

    def set_callbacks(self, *callbacks):
        """Set callbacks called at the start and end of ``fit`` and of each epoch.

        Parameters
        ----------
        *callbacks : objects
            Each with the methods ``setup``, ``teardown``,
            ``on_fit_task_begin`` and ``on_fit_task_end``.

        Returns
        -------
        self : estimator instance
        """
        hooks = ("setup", "teardown", "on_fit_task_begin", "on_fit_task_end")
        bad = [c for c in callbacks if isinstance(c, type) or not all(hasattr(c, h) for h in hooks)]
        if bad:
            raise TypeError(
                f"callbacks must be instances with the methods {list(hooks)}; got {bad}."
            )
        if callbacks:
            self._skl_callbacks = list(callbacks)
        else:
            self.__dict__.pop("_skl_callbacks", None)
        return self

    def _init_callback_context(self, task_name="fit", task_id=0, max_subtasks=0,
                               sequential_subtasks=True):
        callbacks = getattr(self, "_skl_callbacks", [])
        self._callback_fit_ctx = MinimalContext(callbacks, task_name, task_id, max_subtasks)
        self._skl_callbacks_to_teardown = list(callbacks)
        for callback in callbacks:
            callback.setup(estimator=self, context=self._callback_fit_ctx)
        return self._callback_fit_ctx


def minimal_with_callbacks(method):
    """Call the callbacks' ``teardown`` however ``method`` ends."""

    @functools.wraps(method)
    def managed(estimator, *args, **kwargs):
        try:
            return method(estimator, *args, **kwargs)
        finally:
            context = estimator.__dict__.pop("_callback_fit_ctx", None)
            for callback in estimator.__dict__.pop("_skl_callbacks_to_teardown", []):
                callback.teardown(estimator=estimator, context=context)

    return managed


if CallbackSupportMixin is None:
    CallbackSupportMixin, with_callbacks = MinimalCallbackSupportMixin, minimal_with_callbacks
else:
    # scikit-learn's _fit_context already tears the callbacks down.
    def with_callbacks(method):
        return method


class EpochCallbacks:
    """A training hook that reports each epoch to the estimator's callbacks as a
    subtask of ``context`` (see :mod:`skvae._training` for hooks).

    ``fitted_attributes(record)`` gives, for an epoch's
    :class:`~skvae._training.EpochRecord`, the attributes that make a copy of
    the estimator usable with the weights of that epoch.
    """

    def __init__(self, estimator, context, fitted_attributes, X=None, y=None):
        self.estimator, self.context = estimator, context
        self.fitted_attributes = fitted_attributes
        self.X, self.y = X, y
        self.epoch_context = None

    def on_epoch_begin(self, epoch):
        self.epoch_context = self.context.subcontext(task_name="epoch")
        self.epoch_context.call_on_fit_task_begin(estimator=self.estimator)

    def on_epoch_end(self, record):
        return self.epoch_context.call_on_fit_task_end(
            estimator=self.estimator,
            X=self.X,
            y=self.y,
            reconstruction_attributes=lambda: self.fitted_attributes(record),
        )
