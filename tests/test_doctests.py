"""The examples in the package's docstrings run and hold (kornia-style doctests)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import geogan_hf

MODULES = sorted(m.name for m in pkgutil.iter_modules(geogan_hf.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"geogan_hf.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, result
