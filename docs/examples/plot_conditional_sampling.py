"""
==================================================
Conditional synthetic rows: customers who churned
==================================================

``sample(n)`` draws rows from the whole table. To draw rows that all carry a
given value of one column (customers who churned, patients of one site),
declare that column a covariate when fitting (see :ref:`covariates`):
``sample(n, covariates={"churned": True})`` then gives ``n`` rows that all
have ``churned=True``, their other columns drawn from p(x | churned) under
the model.

This example fits :class:`~skvae.VAETransformer` to a synthetic customer
table (as in :ref:`sphx_glr_auto_examples_plot_mixed_table.py`) with
``churned`` as a covariate, draws 1,000 rows for each value, and compares
them with the real rows of that value.
"""

# %%
# A synthetic customer table
# --------------------------
# A plan, a monthly spend that depends on the plan, a number of logins that
# grows with the plan and a hidden level of activity, and whether the customer
# churned: likelier on cheap plans and for inactive customers. Churned and
# loyal customers therefore differ in every other column.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skvae import VAETransformer

rng = np.random.default_rng(0)
n_rows = 1500
plans = ["free", "basic", "pro", "team"]
plan = rng.choice(4, size=n_rows, p=[0.45, 0.30, 0.17, 0.08])
activity = rng.normal(size=n_rows)  # hidden: not a column of the table
spend = np.array([0.0, 9.0, 25.0, 60.0])[plan] * np.exp(0.15 * rng.normal(size=n_rows))
spend += rng.gamma(2.0, 1.5, size=n_rows)
logins = rng.poisson(np.exp(1.0 + 0.45 * plan + 0.6 * activity))
churn_logit = 0.3 - 1.0 * plan - 1.5 * activity
churned = rng.random(n_rows) < 1 / (1 + np.exp(-churn_logit))

table = pd.DataFrame(
    {
        "plan": pd.Categorical.from_codes(plan, categories=plans),
        "monthly_spend": spend.round(2),
        "logins": logins,
        "churned": churned,
    }
)
print(f"{table['churned'].mean():.1%} of the {n_rows} customers churned")

# %%
# Fit with ``churned`` as a covariate
# -----------------------------------
# A bool column is a categorical covariate. ``encode_covariates=True`` gives
# the encoder the covariate too: to draw rows *under* a value, the model must
# be able to learn how the other columns depend on it, and that needs codes
# that do not stand in for it (the end of this example shows what happens
# with the default, ``False``).
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the training report, for a short example
    vae = VAETransformer(
        n_components=2, covariates=["churned"], encode_covariates=True,
        n_iter_no_change=20, random_state=0,
    ).fit(table)
print(pd.DataFrame(vae.column_likelihoods_).T[["likelihood"]])

# %%
# Rows under a given value
# ------------------------
# Every drawn row carries the value asked for; the other columns have the
# table's dtypes, as with ``sample(n)``.
drawn = {
    value: vae.sample(1000, random_state=0, covariates={"churned": value})
    for value in [True, False]
}
for value, rows in drawn.items():
    print(f"churned={value}: {(rows['churned'] == value).mean():.0%} of the drawn rows "
          f"carry it")
print(drawn[True].head().round(2))

# %%
# Drawn against real, value by value
# ----------------------------------
# The plans' shares and the spend among the drawn rows of each value next to
# those of the real customers with that value.
real_style = dict(color="tab:blue", alpha=0.55, label="real")
drawn_style = dict(color="tab:orange", alpha=0.55, label="drawn")
positions = np.arange(len(plans))
bins = np.linspace(0, table["monthly_spend"].max(), 40)

fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), layout="constrained")
for row, value in enumerate([True, False]):
    real = table[table["churned"] == value]
    rows = drawn[value]
    axes[row, 0].bar(positions - 0.2, real["plan"].value_counts(normalize=True, sort=False),
                     width=0.4, **real_style)
    axes[row, 0].bar(positions + 0.2, rows["plan"].value_counts(normalize=True, sort=False),
                     width=0.4, **drawn_style)
    axes[row, 0].set_xticks(positions, plans)
    axes[row, 0].set_ylabel("share of rows")
    axes[row, 0].set_title(f"plan, churned={value}")
    axes[row, 1].hist(real["monthly_spend"], bins=bins, density=True, **real_style)
    axes[row, 1].hist(rows["monthly_spend"], bins=bins, density=True, **drawn_style)
    axes[row, 1].set_title(f"monthly spend, churned={value}")
axes[1, 1].set_xlabel("monthly spend")
axes[0, 1].legend()
plt.show()

# %%
# The shares of the plans, real and drawn, for each value, with the median
# spend and the mean number of logins.


def summary(rows):
    shares = rows["plan"].value_counts(normalize=True, sort=False)
    return pd.concat([shares, pd.Series({"median spend": rows["monthly_spend"].median(),
                                         "mean logins": rows["logins"].mean()})])


comparison = pd.DataFrame(
    {
        (f"churned={value}", source): summary(rows)
        for value in [True, False]
        for source, rows in [("real", table[table["churned"] == value]),
                             ("drawn", drawn[value])]
    }
)
print(comparison.round(2).to_string())

# %%
# Churned and loyal customers come out different, as in the real table: the
# drawn churned customers are mostly on the free plan, spend less and log in
# less; the drawn loyal ones are spread over the plans more evenly. The
# shares follow the real ones closely; the spend and the logins less so, the
# spend being, as in the mixed-table example, a blurred version of the real
# one.
#
# What the covariate costs
# ------------------------
# ``churned`` is no longer modelled: ``score_samples`` is log p(x | churned),
# and ``sample(n)`` without values draws it, row by row, from the training
# rows, so its share among the drawn rows is its share in the table, not
# something the model learnt.
free_rows = vae.sample(4000, random_state=1)
print(f"churned among sample(4000): {free_rows['churned'].mean():.1%}, "
      f"in the table: {table['churned'].mean():.1%}")

# %%
# And with the default ``encode_covariates=False``? The encoder then sees
# the other columns only, and the code, which must hold the plan to
# reconstruct it, also holds much of what ``churned`` says about the plan.
# Sampling draws codes from the prior whatever the value asked for, so the
# plans of the rows drawn under ``churned=True`` come out close to their
# shares over the whole table, not to those of the churned customers.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    default = VAETransformer(
        n_components=2, covariates=["churned"], n_iter_no_change=20, random_state=0
    ).fit(table)
plan_shares = pd.DataFrame(
    {
        "whole table": table["plan"].value_counts(normalize=True, sort=False),
        "real, churned": table.loc[table["churned"], "plan"].value_counts(
            normalize=True, sort=False),
        "encode_covariates=True": drawn[True]["plan"].value_counts(normalize=True, sort=False),
        "encode_covariates=False": default.sample(
            1000, random_state=0, covariates={"churned": True}
        )["plan"].value_counts(normalize=True, sort=False),
    }
)
print("plan shares among rows drawn with churned=True")
print(plan_shares.round(2).to_string())

# %%
# For rows under a covariate value, fit with ``encode_covariates=True``, and
# check the drawn rows against the real ones as above.
