"""The package's layout rules (docs/design.rst): short functions, a bounded
estimator module, and no module reading another's private attributes."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "skvae"
MODULES = sorted(PACKAGE.glob("*.py"))
MAX_FUNCTION_LINES = 50
MAX_ESTIMATOR_LINES = 450
# Standard-library modules whose underscored functions are documented API.
DOCUMENTED = {"sys"}


def code_lines(source, node=None):
    """Lines of code of ``node`` (the whole module when None): neither blank,
    nor comments, nor docstrings."""
    tree = node or ast.parse(source)
    docstrings = set()
    for inner in ast.walk(tree):
        body = getattr(inner, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = source.splitlines()
    first, last = (1, len(lines)) if node is None else (node.lineno, node.end_lineno)
    return sum(1 for number in range(first, last + 1)
               if number not in docstrings and lines[number - 1].strip()
               and not lines[number - 1].strip().startswith("#"))


def functions(tree):
    """``(qualified name, node)`` of every function in ``tree``."""
    out = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_functions_are_short(path):
    source = path.read_text()
    long = {name: code_lines(source, node) for name, node in functions(ast.parse(source))}
    long = {name: n for name, n in long.items()
            if n > MAX_FUNCTION_LINES and name != "VAETransformer.__init__"}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines of code: {long}"


def test_the_estimator_module_stays_bounded():
    assert code_lines((PACKAGE / "_estimator.py").read_text()) <= MAX_ESTIMATOR_LINES


def owned_names(tree):
    """The underscored names a module defines: its functions and classes, and
    the attributes its code sets on ``self``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id == "self"):
            names.add(node.attr)
    return names


def foreign_private_reads(source):
    """``obj._name`` in ``source`` where ``obj`` is not ``self`` or ``cls`` and
    the module does not itself define ``_name``."""
    tree = ast.parse(source)
    owned = owned_names(tree)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__") and node.attr not in owned
                and not (isinstance(node.value, ast.Name)
                         and node.value.id in {"self", "cls"} | DOCUMENTED)):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_module_reads_another_modules_private_attributes(path):
    assert foreign_private_reads(path.read_text()) == []


def test_the_private_attribute_rule_catches_a_foreign_read():
    source = "def f(estimator):\n    return estimator._specs\n"
    assert foreign_private_reads(source) == ["line 2: estimator._specs"]
    owner = "class A:\n    def f(self):\n        self._specs = 1\n\ndef g(a):\n    return a._specs\n"
    assert foreign_private_reads(owner) == []
