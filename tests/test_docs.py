"""The examples in the docstrings run and print what they show.

Every example must run: none may be skipped (``# doctest: +SKIP``), and each
module must show more than imports.
"""

import ast
import doctest
import importlib
import pkgutil

import pytest

import convpool.functional
import convpool.layers
import convpool.models


def _family_modules(package):
    """The modules of a package by family (convpool.layers: core, pooling, ...)
    that hold an example (the base and the package's own module need none)."""
    modules = [importlib.import_module(info.name)
               for info in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
    return [m for m in modules if doctest.DocTestFinder().find(m) and any(
        t.examples for t in doctest.DocTestFinder().find(m))]


MODULES = [*_family_modules(convpool.layers), *_family_modules(convpool.models),
           convpool.functional]


def _examples(module):
    """(docstring name, example) for every example in the module's docstrings."""
    return [(test.name, example) for test in doctest.DocTestFinder().find(module)
            for example in test.examples]


def _only_imports(source):
    return all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.parse(source).body)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    examples = _examples(module)
    skipped = [f"{name}: {ex.source.strip()}" for name, ex in examples
               if ex.options.get(doctest.SKIP)]
    assert not skipped, f"{module.__name__} skips examples: {skipped}"
    real = [ex for _, ex in examples if not _only_imports(ex.source)]
    assert real, f"{module.__name__} has no example beyond imports"
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted == len(examples), "doctest ran other examples than those found"


def test_only_imports_tells_imports_from_examples():
    assert _only_imports("import numpy as np, convpool\n")
    assert _only_imports("from convpool.layers import Conv2D, Dense\n")
    assert not _only_imports("x = np.zeros((2, 3))\n")
    assert not _only_imports("import numpy as np; np.zeros(3)\n")
