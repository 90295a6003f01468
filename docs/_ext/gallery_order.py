"""The order of the examples in the gallery: from a first look to applications.

sphinx-gallery takes this class by its qualified name (``within_subsection_order``),
which keeps the Sphinx configuration picklable.
"""

ORDER = [
    "plot_digits_latent_space.py",
    "plot_reconstructions_and_samples.py",
    "plot_conv_digits.py",
    "plot_mixed_table.py",
    "plot_model_selection.py",
    "plot_latent_size.py",
    "plot_pipeline_classifier.py",
    "plot_anomaly_detection.py",
    "plot_custom_likelihood.py",
    "plot_imputation.py",
    "plot_single_cell.py",
    "plot_batch_correction.py",
    "plot_conditional_sampling.py",
]


class ExampleOrder:
    """Sort key: the position in ``ORDER``; unlisted examples follow by file name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        if filename in ORDER:
            return (ORDER.index(filename), filename)
        return (len(ORDER), filename)

    def __repr__(self):
        return f"{type(self).__name__}()"
