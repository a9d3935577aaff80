"""Every method's options are validated the same way: unknown keys and wrong types are one-line errors."""

from __future__ import annotations

import pytest

from prunebench.errors import ConfigError
from prunebench.prune import get_method, list_methods


@pytest.mark.parametrize("name", list_methods())
def test_unknown_option_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        get_method(name).parse_options({"no_such_option": 1})


@pytest.mark.parametrize(("name", "key"), [("thinet", "ratio"), ("l1norm", "ratio"), ("magnitude", "percent")])
def test_wrong_type_names_the_option(name: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"option {key}: expected"):
        get_method(name).parse_options({key: "0.5"})


def test_int_is_accepted_where_a_float_is_expected() -> None:
    opts = get_method("l1norm").parse_options({"ratio": 0})
    assert opts.ratio == 0
