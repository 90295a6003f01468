"""Doctest collection: the examples of optional modules run only where their
optional dependencies are installed (tests/ skips its own cases)."""

import importlib.util

collect_ignore = []
if not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "onnxscript")):
    collect_ignore.append("skvae/onnx.py")
