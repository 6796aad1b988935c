import pytest

from cygno_online.errors import ConfigError, ConfigErrors
from cygno_online.params import Params


def test_typed_getters_and_defaults():
    p = Params({"a": 1, "b": True, "c": "x", "d": [1, 2]}, "sec")
    assert p.integer("a", 0, minimum=0) == 1
    assert p.boolean("b", False) is True
    assert p.choice("c", "y", ["x", "y"]) == "x"
    assert p.list_of("d", [], int) == [1, 2]
    assert p.number("missing", 2.5) == 2.5
    p.finish()


def test_errors_collected_with_paths_and_allowed_values():
    p = Params({"n": -1, "mode": "fast", "flag": "yes", "typo": 1}, "analyzers.camera")
    p.number("n", 1, minimum=0)
    p.choice("mode", "slow", ["slow", "medium"])
    p.boolean("flag", False)
    with pytest.raises(ConfigErrors) as info:
        p.finish()
    text = str(info.value)
    assert "analyzers.camera.n: is out of range (got -1); allowed: >= 0" in text
    assert (
        "analyzers.camera.mode: is not an allowed value (got 'fast'); allowed: 'slow', 'medium'"
        in text
    )
    assert "analyzers.camera.flag: must be true or false" in text
    assert "analyzers.camera.typo: is not a known key" in text


def test_required_and_nested_sections():
    p = Params({"sub": {"x": "notanumber"}}, "")
    s = p.section("sub")
    s.number("x", 1)
    p.string("name")
    with pytest.raises(ConfigErrors) as info:
        p.finish()
    assert {e.path for e in info.value.errors} == {"sub.x", "name"}


def test_bool_is_not_a_number_and_non_mapping_rejected():
    p = Params({"n": True}, "s")
    p.number("n", 1)
    with pytest.raises(ConfigError, match=r"s\.n: must be a number"):
        p.finish()
    with pytest.raises(ConfigError, match="must be a mapping"):
        Params([1, 2], "top").finish()
