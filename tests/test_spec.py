"""Parameter specifications: ranges, parsing of fire's values, defaults reaching the library functions."""

import importlib
import inspect

import pytest

from isonet.commands import ALL, EXTRACT, REFINE
from isonet.errors import UsageError
from isonet.refine.config import RefineConfig
from isonet.spec import MISSING, CommandSpec, Param, in_range


@pytest.mark.parametrize("number, text, inside", [
    (0, "> 0", False), (1e-9, "> 0", True), (1, ">= 1", True), (0, ">= 1", False), (5, "< 5", False),
    (5, "<= 5", True), (0, "(0, 100]", False), (100, "(0, 100]", True), (0.5, "[0, 0.5)", False),
    (-90, "[-90, 90]", True), (1e300, "(-inf, inf)", True),
])
def test_ranges(number, text, inside):
    assert in_range(number, text) is inside


def test_malformed_range_fails_at_definition():
    with pytest.raises(ValueError, match="bad range"):
        CommandSpec("x", "", "", (Param("a", "int", 1, range="positive"),), "m:f")


@pytest.mark.parametrize("name, raw, value", [
    ("cube_size", 32, 32), ("cube_size", "32", 32), ("tomo_idx", "1,3-5", [1, 3, 4, 5]), ("tomo_idx", (2, 1), [1, 2]),
    ("use_deconv_tomo", "no", False), ("crop_size", "None", None), ("subtomo_folder", 7, "7"),
])
def test_parse_fire_values(name, raw, value):
    assert EXTRACT[name].parse(raw) == value


@pytest.mark.parametrize("name, raw, message", [
    ("cube_size", "abc", "--cube_size: expected a whole number, got 'abc'"),
    ("cube_size", 4, "--cube_size: expected a value >= 8 voxels, got 4"),
    ("cube_size", 16.5, "--cube_size: expected a whole number"), ("seed", (1, 2), "--seed: expected one number"),
])
def test_parse_errors_name_the_parameter(name, raw, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        EXTRACT[name].parse(raw)


def test_parse_keeps_only_the_values_given():
    raw = {p.name: MISSING for p in EXTRACT.params}
    raw.update(star_file="t.star", cube_size="32")
    assert EXTRACT.parse(raw) == {"star_file": "t.star", "cube_size": 32}
    with pytest.raises(UsageError, match="missing argument STAR_FILE"):
        EXTRACT.parse({"cube_size": 32})


def test_every_library_function_takes_its_defaults_from_its_spec():
    for spec in ALL:
        if spec.name in ("check", "refine"):
            continue
        module, name = spec.function.split(":")
        function = getattr(importlib.import_module(module), name)
        assert function.spec is spec, spec.name
        parameters = inspect.signature(function).parameters
        for param in spec.options:
            assert parameters[param.keyword].default == param.default, (spec.name, param.name)


def test_decorated_function_fills_defaults_and_checks():
    spec = CommandSpec("demo", "", "", (Param("path", "text", required=True), Param("n", "int", 3, range=">= 1"),
                                        Param("label", "text", None, target="name")), "m:f")

    @spec.implements
    def demo(path, n, name):
        return path, n, name

    assert demo("a") == ("a", 3, None)
    assert demo("a", 5, "x") == ("a", 5, "x")
    assert demo(path="a", label="y") == demo("a", name="y") == ("a", 3, "y")
    with pytest.raises(UsageError, match="--n: expected a value >= 1, got 0"):
        demo("a", n=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'm'"):
        demo("a", m=1)
    with pytest.raises(TypeError, match="takes"):
        spec.implements(lambda path, n: None)


def test_refine_config_defaults_are_the_spec_defaults():
    config = RefineConfig()
    for param in REFINE.options:
        if param.name != "continue_from":
            assert getattr(config, param.name) == param.default, param.name
    assert RefineConfig.from_cli({"iterations": 5}).explicit == {"iterations"}
