"""Covariate values for decoding: given by the user, or drawn from training.

A model fitted with ``covariates=[...]`` decodes under covariate values:
``inverse_transform(Z, covariates=...)`` and ``sample(n, covariates=...)``
take them as a dict (a value or one per row for each covariate), a DataFrame
holding the covariate columns, or an array of them in order; ``sample(n)``
without any draws rows of them from the training rows. Here they become the
model's coded rows (a full-width float matrix, NaN outside the covariate
columns), which the decoder reads through :meth:`Observation.conditions` and
which fill the covariate columns of the decoded rows.
"""

import numpy as np
import torch

from ._tables import is_dataframe


def given_rows(observation, columns, covariates, n_rows, what):
    """The coded full-width rows (``n_rows`` of them) of the model
    ``observation`` (whose columns are named ``columns``) holding the
    covariate values ``covariates`` (see the module docstring), for ``what``
    (the method, for messages); None for a model without covariates."""
    names = [columns[j] for j in observation.covariate_columns]
    if not names:
        if covariates is not None:
            raise ValueError(f"{what}: this model has no covariates; covariates= does not "
                             "apply (fit with covariates=[...] to use them).")
        return None
    given = _columns_of(covariates, names, n_rows, what)
    rows = np.full((n_rows, observation.n_features), np.nan)
    for lik, cols in zip(observation.likelihoods, observation.columns):
        if getattr(lik, "covariate", False):
            picked = [columns[j] for j in cols]
            values = np.empty((n_rows, len(cols)), dtype=object)
            for k, name in enumerate(picked):
                values[:, k] = given[name]
            rows[:, cols] = lik.encode(values, picked)
    return rows


def _columns_of(covariates, names, n_rows, what):
    """``{name: 1-D object array of n_rows}`` from the forms ``covariates``
    takes; a clear error for a missing covariate or a wrong length."""
    if covariates is None:
        raise ValueError(
            f"{what}: this model was fitted with covariates {names}; give their values "
            "with covariates= (a dict of a value or one per row for each, or a "
            "DataFrame holding them).")
    if is_dataframe(covariates) or hasattr(covariates, "to_pandas"):
        frame = covariates.to_pandas() if not is_dataframe(covariates) else covariates
        covariates = {name: frame[name].to_numpy(dtype=object) for name in names
                      if name in frame.columns}
    elif not isinstance(covariates, dict):
        array = np.asarray(covariates, dtype=object)
        array = array.reshape(1, -1) if array.ndim < 2 else array
        if array.shape[1] != len(names):
            raise ValueError(f"{what}: covariates has {array.shape[1]} columns, but the model "
                             f"has {len(names)} covariates {names}.")
        covariates = dict(zip(names, array.T))
    lacking = [name for name in names if name not in covariates]
    unknown = [name for name in covariates if name not in names]
    if lacking or unknown:
        raise ValueError(f"{what}: covariates must give every covariate of the model, "
                         f"{names}; missing {lacking}, not covariates {unknown}.")
    columns = {}
    for name in names:
        values = np.asarray(covariates[name], dtype=object).reshape(-1)
        if len(values) == 1:
            values = np.repeat(values, n_rows)
        if len(values) != n_rows:
            raise ValueError(f"{what}: covariate {name!r} has {len(values)} values for "
                             f"{n_rows} rows; give one value, or one per row.")
        columns[name] = values
    return columns


def drawn_rows(observation, draws, n_rows, generator):
    """Coded full-width rows of the model ``observation`` whose covariate
    values are drawn, row by row, from the training rows' ``draws`` (values
    and counts; ``generator`` picks them); None without covariates."""
    if draws is None:
        return None
    values, counts = draws
    pick = torch.multinomial(torch.as_tensor(counts, dtype=torch.float64), n_rows,
                             replacement=True, generator=generator).numpy()
    rows = np.full((n_rows, observation.n_features), np.nan)
    rows[:, observation.covariate_columns] = values[pick]
    return rows


def fill(out, rows, observation):
    """The decoded float rows ``out`` with their covariate columns set from
    the coded ``rows`` (the values they were decoded under)."""
    if rows is not None:
        columns = observation.covariate_columns
        out[:, columns] = rows[:, columns]
    return out
