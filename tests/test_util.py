"""shoal.util: batch_length, and pescador's helpers get_rng, rename_kw, moved and deprecated."""

import inspect
import sys
import warnings

import numpy as np
import pytest

import shoal as pescador
from shoal import DataError, ShoalTypeError, batch_length


def test_batch_length():
    assert batch_length({"x": np.zeros((5, 2)), "y": [1, 2, 3, 4, 5]}) == 5
    assert batch_length((np.zeros(3), np.zeros(3))) == 3
    assert batch_length({}) is None
    with pytest.raises(DataError, match="batch fields have unequal lengths: 'x' has 5, 'y' has 2"):
        batch_length({"x": np.zeros(5), "y": np.zeros(2)})
    with pytest.raises(DataError, match="batch field 'y' has no length: 3"):
        batch_length({"x": np.zeros(5), "y": 3})
    with pytest.raises(ShoalTypeError, match=r"batch must be a dict, tuple or list of arrays, got 5 \(int\)"):
        batch_length(5)


# -- pescador's helpers --------------------------------------------------------


def test_get_rng_as_in_pescador():
    assert pescador.get_rng(None) is np.random
    assert pescador.get_rng(7).randint(100, size=5).tolist() == (
        np.random.RandomState(7).randint(100, size=5).tolist())
    state = np.random.RandomState(1)
    assert pescador.get_rng(state) is state
    assert isinstance(pescador.get_rng(np.int64(3)), np.random.RandomState)


@pytest.mark.parametrize("bad, error, message", [
    ("x", TypeError, r"random_state must be None, an int or a numpy RandomState, got 'x' \(str\)"),
    (1.5, TypeError, r"got 1\.5 \(float\)"),
    (np.random.default_rng(0), TypeError, r"got Generator\(PCG64\).* \(Generator\)"),
    (True, TypeError, r"got True \(bool\)"),
    (-1, ValueError, r"random_state must be an int in \[0, 2\*\*32\), got -1"),
    (2**32, ValueError, r"got 4294967296"),
])
def test_get_rng_refuses_what_is_not_a_seed(bad, error, message):
    with pytest.raises(error, match=message) as info:
        pescador.get_rng(bad)
    assert isinstance(info.value, pescador.PescadorError)


def test_rename_kw_returns_the_value_given_and_warns_at_the_callers_line():
    def scale(x, factor=1, multiplier=pescador.util.Deprecated()):  # noqa: B008 (pescador's idiom)
        factor = pescador.util.rename_kw("multiplier", multiplier, "factor", factor, "0.9", "1.1")
        return x * factor

    assert repr(pescador.util.Deprecated()) == "<DEPRECATED parameter>"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scale(2, factor=3) == 6  # the new name: no warning
    with pytest.warns(DeprecationWarning) as caught:
        line = sys._getframe().f_lineno + 1
        assert scale(2, multiplier=5) == 10
    assert [str(w.message) for w in caught] == [
        "scale() keyword argument 'multiplier' has been renamed to 'factor' in version 0.9."
        "\n\tThis alias will be removed in version 1.1."
    ]
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)


def added(x, y=2):
    """Add."""
    return x + y


def test_moved_and_deprecated_warn_at_the_functions_first_line_and_keep_its_signature():
    old_added = pescador.util.moved("oldpkg.plus", "0.9", "1.1")(added)
    with pytest.warns(DeprecationWarning) as caught:
        assert old_added(1, y=5) == 6
    assert [str(w.message) for w in caught] == [
        f"oldpkg.plus\n\tThis function was moved to '{__name__}.added' in version 0.9."
        "\n\tThis alias will be removed in version 1.1."
    ]
    where = (added.__code__.co_filename, added.__code__.co_firstlineno + 1)
    assert (caught[0].filename, caught[0].lineno) == where
    assert inspect.signature(old_added) == inspect.signature(added)
    assert old_added.__doc__ == "Add."

    going = pescador.util.deprecated("0.9", "1.1")(added)
    with pytest.warns(DeprecationWarning) as caught:
        assert going(1) == 3
    assert [str(w.message) for w in caught] == [
        f"{__name__}.added\n\tDeprecated as of version 0.9.\n\tIt will be removed in version 1.1."
    ]
    assert (caught[0].filename, caught[0].lineno) == where
    assert inspect.signature(going) == inspect.signature(added)
