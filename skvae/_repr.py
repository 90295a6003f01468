"""How skvae's estimators show in notebooks: their HTML representation links
to their page of the API reference."""

# Where the documentation lives (the HTML representation links to it).
DOCS_URL = "https://skvae.readthedocs.io/en/latest/"


class DocLinkMixin:
    """The HTML representation (in notebooks) links to the estimator's page of
    skvae's API reference; put it before ``BaseEstimator``."""

    _doc_link_module = "skvae"
    _doc_link_template = DOCS_URL + "generated/skvae.{estimator_name}.html"

    def _doc_link_url_param_generator(self):
        return {"estimator_name": type(self).__name__}
