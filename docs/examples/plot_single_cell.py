"""
====================================================
Single-cell counts: from an AnnData into scanpy
====================================================

Single-cell RNA data come as a sparse matrix of counts (cells x genes) inside
an AnnData object, and the scverse tools (scanpy) build their neighbour graph,
UMAP and clusters on a low-dimensional representation of the cells. This
example fits :class:`~skvae.VAETransformer` to the raw counts of 700 blood
cells, straight from the sparse matrix, puts the codes into ``adata.obsm``,
runs scanpy's neighbours, UMAP and Leiden clustering on them, and draws new
cells with ``sample`` (see :ref:`counts`).

It needs ``scanpy`` (and ``leidenalg`` for the clustering), which the
documentation's requirements install.
"""

# %%
# Counts in an AnnData layer
# --------------------------
# ``pbmc68k_reduced`` ships with scanpy: 700 peripheral blood cells, 765 genes,
# with cell types from their surface markers (``bulk_labels``). It stores
# log-normalised values; the integer counts are recovered from them (each
# cell's values divided by its smallest non-zero one, which is one read) and
# kept, sparse, in a layer, as a count matrix usually is.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import scanpy as sc
import scipy.sparse as sp
from sklearn.metrics import silhouette_score
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from skvae import VAETransformer

adata = sc.datasets.pbmc68k_reduced()
values = np.expm1(adata.raw.X.toarray())
one_read = np.where(values > 0, values, np.inf).min(axis=1, keepdims=True)
adata = adata.raw.to_adata()
adata.layers["counts"] = sp.csr_matrix(np.round(values / one_read))
counts = adata.layers["counts"]
depth = np.asarray(counts.sum(axis=1)).ravel()
print(f"{counts.shape[0]} cells x {counts.shape[1]} genes, "
      f"{counts.nnz / np.prod(counts.shape):.0%} of the entries non-zero, "
      f"{depth.min():.0f} to {depth.max():.0f} reads per cell")

# %%
# Fit on the sparse counts
# ------------------------
# The sparse matrix goes straight into ``fit``: it is read a batch at a time,
# never made dense whole. Its values are whole and non-negative, so the
# default ``likelihood="auto"`` models every gene as counts;
# ``column_likelihoods_`` says which likelihood it chose.
vae = VAETransformer(n_components=10, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the training report, for a short example
    adata.obsm["X_vae"] = vae.fit_transform(counts)
print("likelihood:", vae.column_likelihoods_[0]["likelihood"])
print(f"{vae.n_iter_} epochs")

# %%
# The codes in scanpy
# -------------------
# ``use_rep="X_vae"`` builds scanpy's neighbour graph on the codes instead of
# its own PCA; UMAP and Leiden clustering follow from the graph as usual. For
# reference, the standard scanpy route (counts normalised per cell,
# ``log1p``, then 10 principal components) runs beside it.
reference = adata.copy()
reference.X = counts.copy()
sc.pp.normalize_total(reference)
sc.pp.log1p(reference)
sc.pp.pca(reference, n_comps=10, random_state=0)
adata.obsm["X_pca"] = reference.obsm["X_pca"]

sc.pp.neighbors(adata, use_rep="X_vae", random_state=0)
sc.tl.umap(adata, random_state=0)
sc.tl.leiden(adata, flavor="igraph", n_iterations=2, random_state=0)

fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
sc.pl.umap(adata, color="bulk_labels", ax=axes[0], show=False, title="cell type")
sc.pl.umap(adata, color="leiden", ax=axes[1], show=False, title="Leiden clusters")
plt.show()

# %%
# How well the codes separate the cell types
# ------------------------------------------
# Two label-free-model checks with the known cell types: the silhouette of the
# types in each representation, and the accuracy of a 15-nearest-neighbour
# classifier (5-fold cross-validation). Both are printed for the VAE codes and
# for the PCA of normalised counts.
labels = adata.obs["bulk_labels"].to_numpy()
for name in ("X_vae", "X_pca"):
    codes = adata.obsm[name]
    accuracy = cross_val_score(KNeighborsClassifier(15), codes, labels, cv=5).mean()
    print(f"{name}: silhouette {silhouette_score(codes, labels):.3f}, "
          f"kNN accuracy {accuracy:.3f}")

# %%
# New cells
# ---------
# ``sample`` draws the counts of new cells from the model: codes from the
# prior, decoded, and counts drawn from the likelihood. The mean count of each
# gene in 700 drawn cells is set against its mean in the real ones.
new_cells = vae.sample(700, random_state=0)
real_mean = np.asarray(counts.mean(axis=0)).ravel()
drawn_mean = new_cells.mean(axis=0)
correlation = np.corrcoef(np.log1p(real_mean), np.log1p(drawn_mean))[0, 1]
print(f"correlation of log mean counts per gene, real vs drawn: {correlation:.3f}")

fig, ax = plt.subplots(figsize=(4.5, 4.2), layout="constrained")
ax.loglog(real_mean + 1e-3, drawn_mean + 1e-3, ".", alpha=0.5)
lims = [1e-3, max(real_mean.max(), drawn_mean.max()) * 1.5]
ax.plot(lims, lims, "k--", lw=1)
ax.set_xlabel("mean count per gene, real cells")
ax.set_ylabel("mean count per gene, drawn cells")
plt.show()
