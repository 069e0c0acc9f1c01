"""The examples in the docstrings run and print what they show."""

import doctest

import pytest

import convpool.functional
import convpool.layers
import convpool.models


@pytest.mark.parametrize("module", [convpool.layers, convpool.models, convpool.functional],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module.__name__} has no examples left to check"
    assert result.failed == 0
