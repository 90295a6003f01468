"""
==========================================
A mixed table: numbers, counts, categories
==========================================

Real tables mix kinds of data. :class:`~skvae.VAETransformer` takes a pandas
DataFrame as it is and gives each column a likelihood by its dtype and range:
a skewed non-negative float column is log-normal (other floats Gaussian), a
column of whole numbers over a range of at most 100 values is discrete (each
value a probability of its own), a categorical column gets a softmax over its
categories and a bool column is Bernoulli (see :ref:`tables_and_images`).

This example makes a small synthetic table of customers of a subscription
service, in which the columns depend on each other, fits a VAE to it, and
compares rows drawn with ``sample`` with the real ones: the frequencies of the
categories, the distributions of the numbers and counts, and the relations
between the columns.
"""

# %%
# A synthetic customer table
# --------------------------
# Each customer has a plan (four categories with very different frequencies),
# a monthly spend that depends on the plan, a number of logins last month (a
# count that grows with the plan and with a hidden level of activity), and
# whether they cancelled, which is likelier for inactive customers on cheap
# plans.
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
spend += rng.gamma(2.0, 1.5, size=n_rows)  # add-ons, for every plan
logins = rng.poisson(np.exp(1.0 + 0.45 * plan + 0.6 * activity))
churn_logit = -0.5 - 0.6 * plan - 1.2 * activity
churned = rng.random(n_rows) < 1 / (1 + np.exp(-churn_logit))

table = pd.DataFrame(
    {
        "plan": pd.Categorical.from_codes(plan, categories=plans),
        "monthly_spend": spend.round(2),
        "logins": logins,
        "churned": churned,
    }
)
print(table.head())
print(table.dtypes)

# %%
# Fit the VAE
# -----------
# The DataFrame goes straight into ``fit``: no encoder for the categories, no
# scaler for the numbers. The likelihood chosen for each column follows from
# its dtype; a dict such as ``likelihood={"logins": "poisson"}`` would override
# it for the columns it names. Training stops once the loss has not improved
# for ``n_iter_no_change`` epochs (here 20, a little more patience than the
# default 10, which helps the rare plan's rows).
vae = VAETransformer(n_components=2, n_iter_no_change=20, random_state=0)
vae.fit(table)
print(f"trained for {vae.n_iter_} epochs")

# %%
# ``column_likelihoods_`` says what the automatic rule chose for each column,
# and the support that ``sample`` and ``inverse_transform`` keep it in: the
# categories, or the training range.
print(pd.DataFrame(vae.column_likelihoods_).T)

# %%
# New rows from the model
# -----------------------
# ``sample`` returns a DataFrame with the table's columns and dtypes: plans
# are categories seen in ``fit`` (with the same categorical dtype), logins are
# non-negative integers and ``churned`` is a bool.
synthetic = vae.sample(n_rows, random_state=0)
print(synthetic.head().round(2))
print(synthetic.dtypes)

# %%
# Sampled against real: the marginal distributions
# ------------------------------------------------
# Each column's distribution in the synthetic rows next to the real one.
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), layout="constrained")
real_style = dict(color="tab:blue", alpha=0.55, label="real")
sampled_style = dict(color="tab:orange", alpha=0.55, label="sampled")

shares = pd.DataFrame(
    {
        "real": table["plan"].value_counts(normalize=True, sort=False),
        "sampled": synthetic["plan"].value_counts(normalize=True, sort=False),
    }
)
positions = np.arange(len(plans))
axes[0].bar(positions - 0.2, shares["real"], width=0.4, **real_style)
axes[0].bar(positions + 0.2, shares["sampled"], width=0.4, **sampled_style)
axes[0].set_xticks(positions, plans)
axes[0].set_ylabel("share of rows")
axes[0].set_title("plan (categorical)")

low = min(table["monthly_spend"].min(), synthetic["monthly_spend"].min())
bins = np.linspace(low, table["monthly_spend"].max(), 40)
axes[1].hist(table["monthly_spend"], bins=bins, density=True, **real_style)
axes[1].hist(synthetic["monthly_spend"], bins=bins, density=True, **sampled_style)
axes[1].set_xlabel("monthly spend")
axes[1].set_title("monthly_spend (log-normal)")

bins = np.arange(0, np.percentile(table["logins"], 99) + 2) - 0.5
axes[2].hist(table["logins"], bins=bins, density=True, **real_style)
axes[2].hist(synthetic["logins"], bins=bins, density=True, **sampled_style)
axes[2].set_xlabel("logins last month")
axes[2].set_title("logins (discrete)")
axes[2].legend()
plt.show()

# %%
# The plans' shares are close, the rare one included, and the logins keep
# their skewed shape. The spend is the hardest column: its likelihood gives it
# one variance (on the log scale) whatever the plan, so the sampled spend is
# blurred where the real one has narrow peaks. Being log-normal, and kept
# within the training range (``bound_outputs=True``, the default), no sampled
# spend falls below zero or above the largest real one.
negative = (synthetic["monthly_spend"] < 0).mean()
print(f"share of sampled spends below zero: {negative:.1%}")
print(f"largest sampled spend {synthetic['monthly_spend'].max():.2f}, "
      f"largest real {table['monthly_spend'].max():.2f}")

# %%
# Sampled against real: relations between columns
# ------------------------------------------------
# A model of each column on its own would get the marginal distributions right
# too. What a VAE adds is the joint distribution: in the synthetic rows, spend,
# logins and churn should still depend on the plan as they do in the real ones.
summary = pd.concat(
    {
        name: frame.groupby("plan", observed=True).agg(
            mean_spend=("monthly_spend", "mean"),
            median_logins=("logins", "median"),
            churn_rate=("churned", "mean"),
        )
        for name, frame in [("real", table), ("sampled", synthetic)]
    },
    axis=1,
)
print(summary.round(2))

# %%
# In the sampled rows, as in the real ones, spend and logins rise with the plan
# and churn is most common on the free plan and least on the team plan. The
# rare team plan, about 120 of the 1,500 rows, is matched least closely: its
# sampled spend is pulled towards that of the other plans.

# %%
# The latent space
# ----------------
# ``transform`` encodes each customer as the posterior mean of its two latent
# coordinates. Coloured by plan, the plans occupy regions of their own along
# the first coordinate; within each plan the customers spread along the second
# by their number of logins (the stripes are successive counts), which is
# where the hidden level of activity shows.
Z = vae.transform(table)
# sphinx_gallery_thumbnail_number = 2
fig, ax = plt.subplots(figsize=(7, 4.6), layout="constrained")
for code, name in enumerate(plans):
    rows = plan == code
    ax.scatter(Z[rows, 0], Z[rows, 1], s=8, alpha=0.7, label=name)
ax.set_xlabel("component 1")
ax.set_ylabel("component 2")
ax.set_title("customers in the latent space")
ax.legend(title="plan", markerscale=2, loc="upper left", bbox_to_anchor=(1, 1))
plt.show()
