"""Warnings that point at the user's line.

A fixed ``stacklevel`` breaks as soon as a call goes through another layer
(scikit-learn's ``_fit_context`` and ``set_output`` wrappers, ``fit_transform``,
an imputer around the transformer, a search around both). :func:`warn` instead
attributes the warning to the first frame outside skvae and scikit-learn: the
code that called them.
"""

import os
import sys
import warnings

import sklearn

_PACKAGES = tuple(os.path.dirname(os.path.abspath(path)) + os.sep
                  for path in (__file__, sklearn.__file__))
_WRAPPERS = (os.sep + "contextlib.py", os.sep + "functools.py")


def _internal(filename):
    return filename.startswith(_PACKAGES) or filename.endswith(_WRAPPERS)


def warn(message, category=UserWarning):
    """``warnings.warn(message, category)`` attributed to the caller's code."""
    # stacklevel 1 is this function; 2 its caller, sys._getframe(1).
    frame, level = sys._getframe(1), 2
    while frame is not None and _internal(os.path.abspath(frame.f_code.co_filename)):
        frame, level = frame.f_back, level + 1
    if frame is None:  # everything was internal (a doctest, say): the nearest frame
        level = 2
    warnings.warn(message, category, stacklevel=level)
