"""Saving a model to a file atomically, and loading it back.

:func:`save` writes to a temporary file in the destination's folder, flushes
and syncs it to the disk, then renames it over the destination: the rename is
atomic, so the destination holds either the previous file or the new one
whole, never a truncated mix (a full disk, a crash, a Ctrl-C midway). :func:`load`
reads a file of any of the three formats and refuses a damaged one with a
:class:`~skvae.ModelFileError`, whatever part of the file the damage is in
(a pickle's opcodes are checked before it is unpickled: see
:func:`_check_pickle`).
"""

import contextlib
import os
import pickle
import pickletools
import secrets

from ._persistence import ModelFileError

FORMATS = ("pickle", "joblib", "skops")


def save(estimator, path, format="pickle"):
    """Save ``estimator`` to ``path`` atomically.

    The model is written to a temporary file in the same folder, flushed and
    synced to the disk, and only then renamed to ``path``. If writing fails
    (a full disk, say), the temporary file is removed, the error is raised and
    a file already at ``path`` is left as it was.

    Parameters
    ----------
    estimator : object
        The model to save: a :class:`~skvae.VAETransformer`, a
        :class:`~skvae.VAEImputer`, a pipeline holding them, or any object the
        chosen format can save.
    path : str or path-like
        Where to save it. Its folder must exist.
    format : {"pickle", "joblib", "skops"}, default="pickle"
        The file format: :mod:`pickle`, :func:`joblib.dump` or
        :func:`skops.io.dump` (which needs the ``skops`` package).

    Returns
    -------
    path : str
        The path written.

    See Also
    --------
    load : Load a model saved by ``save`` (or by pickle, joblib or skops).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import skvae
    >>> X = np.random.RandomState(0).normal(size=(100, 4))
    >>> vae = skvae.VAETransformer(max_iter=5, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "vae.pkl")
    >>> _ = skvae.save(vae, path)
    >>> np.allclose(skvae.load(path).transform(X), vae.transform(X))
    True
    """
    dump = _dumper(format)
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    # Created as a new file is (the process's umask applies), or with the
    # permissions of the file it replaces.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            dump(estimator, file)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, os.stat(path).st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _sync_folder(folder)
    return path


def load(path, format="pickle", trusted=None):
    """Load a model saved by :func:`save`, :mod:`pickle`, joblib or skops.

    Any damage to the file is refused with a :class:`~skvae.ModelFileError`
    (a ``ValueError``) that says what is wrong: a file that the format's
    reader cannot parse, as well as one that parses but whose model does not
    match its checksum. Loading a pickle or joblib file can run code that the
    file names: load only files you trust, or use ``format="skops"``.

    Parameters
    ----------
    path : str or path-like
        The file.
    format : {"pickle", "joblib", "skops"}, default="pickle"
        The format it was saved in.
    trusted : list of str, default=None
        With ``format="skops"``, the types to trust beyond skvae's own (those
        of your likelihoods or callbacks, say); see
        :func:`skops.io.get_untrusted_types`; a file naming other types is
        refused by skops (``UntrustedTypesFoundException``, which names them).
        Ignored for the other formats.

    Returns
    -------
    estimator : object
        The model saved (a scikit-learn estimator: a file holding anything
        else is refused).

    Raises
    ------
    ModelFileError
        The file is damaged, truncated, not a model, or written by a newer
        skvae.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import skvae
    >>> X = np.random.RandomState(0).normal(size=(100, 4))
    >>> vae = skvae.VAETransformer(max_iter=5, random_state=0).fit(X)
    >>> path = skvae.save(vae, os.path.join(tempfile.mkdtemp(), "vae.joblib"),
    ...                   format="joblib")
    >>> skvae.load(path, format="joblib").n_iter_
    5
    """
    reader = _reader(format, trusted)
    with open(path, "rb") as file:
        try:
            estimator = reader(file)
        except ModelFileError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "UntrustedTypesFoundException":
                raise  # not damage: types to trust, which skops names
            raise _damaged(path, format, exc) from exc
    if not hasattr(estimator, "get_params"):  # damage that turned the model into another object
        raise ModelFileError(
            f"The model file {os.fspath(path)!r} holds a {type(estimator).__name__}, not a "
            "scikit-learn estimator: it is damaged or not a saved model.")
    return estimator


def _damaged(path, format, exc):
    """The error for a file that the format's reader failed on."""
    return ModelFileError(
        f"The model file {os.fspath(path)!r} cannot be read as {format} "
        f"({type(exc).__name__}: {exc}); it is damaged, truncated or not a saved model.")


def _dumper(format):
    if format == "pickle":
        return lambda estimator, file: pickle.dump(estimator, file,
                                                   protocol=pickle.HIGHEST_PROTOCOL)
    if format == "joblib":
        import joblib

        return joblib.dump
    if format == "skops":
        import skops.io

        return lambda estimator, file: file.write(skops.io.dumps(estimator))
    raise ValueError(f"format must be one of {list(FORMATS)}; got {format!r}.")


def _reader(format, trusted):
    if format == "pickle":
        def read(file):
            data = file.read()
            _check_pickle(data)
            return pickle.loads(data)

        return read
    if format == "joblib":
        import joblib

        return joblib.load
    if format == "skops":
        import skops.io

        def read(file):
            data = file.read()
            own = [name for name in skops.io.get_untrusted_types(data=data)
                   if name.startswith("skvae.")]
            return skops.io.loads(data, trusted=own + list(trusted or []))

        return read
    raise ValueError(f"format must be one of {list(FORMATS)}; got {format!r}.")


def _check_pickle(data):
    """Refuse a pickle whose opcodes do not parse, or that stores an object
    under a memo index beyond any its size allows: a damaged index (say
    1,365,009,665) makes CPython's unpickler grow its memo to that many
    entries, gigabytes, before anything else fails."""
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"):
            if not isinstance(argument, int) or not 0 <= argument < len(data):
                raise ValueError(f"memo index {argument!r} out of range for a pickle of "
                                 f"{len(data)} bytes")


def _sync_folder(folder):
    """Make the rename itself durable, where the system allows syncing a folder."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
