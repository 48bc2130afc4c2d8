"""A strict cattrs converter, and the walk from cattrs' error tree to (path, problem) pairs.

cattrs alone turns ``chunk_size: "12"`` into 12 and ``type: 3`` into "3"; a guardrails config
must not guess, so primitives are structured only from values of their own type.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, override

from ._errors import RailstreamError

__all__ = [
    "NOT_FROM_YAML",
    "Path",
    "StrictTypeError",
    "make_converter",
    "structure_problems",
    "type_name",
]

Path = tuple[str | int, ...]

# attrs field metadata of a field the loader fills in (a config's actions, where it came
# from): never read from YAML, so a key of its name in config.yml is an unknown key.
_NOT_FROM_YAML_KEY = "railstream_not_from_yaml"
NOT_FROM_YAML: Mapping[str, bool] = {_NOT_FROM_YAML_KEY: True}


def type_name(value: object) -> str:
    """How a YAML value's type reads to a user."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


class StrictTypeError(RailstreamError, TypeError):
    """A value of the wrong type; its message is shown to the user as it is."""


def _structure_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise StrictTypeError(f"expected a string, got {type_name(value)}")
    return value


def _structure_bool(value: object, _: object) -> bool:
    if not isinstance(value, bool):
        raise StrictTypeError(f"expected true or false, got {type_name(value)}")
    return value


def _structure_int(value: object, _: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StrictTypeError(f"expected an integer, got {type_name(value)}")
    return value


def _structure_float(value: object, _: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StrictTypeError(f"expected a number, got {type_name(value)}")
    return float(value)


def _structure_mapping(value: object, _: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise StrictTypeError(f"expected a mapping, got {type_name(value)}")
    return dict(value)


def _is_homogenous_tuple(cl: Any) -> bool:
    args = get_args(cl)
    return get_origin(cl) is tuple and len(args) == 2 and args[1] is Ellipsis


def _not_from_yaml(cl: Any) -> list[str]:
    """The fields of attrs class ``cl`` marked :data:`NOT_FROM_YAML`."""
    if not (isinstance(cl, type) and attrs.has(cl)):
        return []
    return [f.name for f in attrs.fields(cl) if f.metadata.get(_NOT_FROM_YAML_KEY)]


def _omitting_factory(cl: Any, conv: cattrs.Converter) -> Any:
    """The structure hook of ``cl``, which leaves its :data:`NOT_FROM_YAML` fields out."""
    # Any: the overrides go in by field name, among make_dict_structure_fn's own keywords.
    omitted: dict[str, Any] = {name: override(omit=True) for name in _not_from_yaml(cl)}
    return make_dict_structure_fn(cl, conv, _cattrs_forbid_extra_keys=True, **omitted)


def make_converter() -> cattrs.Converter:
    """The converter for config files: unknown keys and wrong types are errors."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook_func(lambda cl: cl == Mapping[str, Any], _structure_mapping)

    def _strict_tuple_factory(cl: Any, conv: cattrs.Converter) -> Any:
        elements = homogenous_tuple_structure_factory(cl, conv)

        def structure(value: object, type_: Any) -> tuple[Any, ...]:
            # cattrs would take a string or a mapping as a list of characters or keys.
            if not isinstance(value, list | tuple):
                raise StrictTypeError(f"expected a list, got {type_name(value)}")
            return elements(value, type_)  # type: ignore[no-any-return]

        return structure

    converter.register_structure_hook_factory(_is_homogenous_tuple, _strict_tuple_factory)

    # Fields that are not read from YAML: a config.yml key of that name is an unknown key.
    converter.register_structure_hook_factory(
        lambda cl: bool(_not_from_yaml(cl)), _omitting_factory
    )
    return converter


def structure_problems(exc: BaseException, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Flatten a cattrs structuring error into ``(path, problem)`` pairs."""
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            yield from structure_problems(sub, (*path, note.name))
        for sub in without:
            yield from structure_problems(sub, path)
    elif isinstance(exc, IterableValidationError):
        with_index, without = exc.group_exceptions()
        for sub, inote in with_index:
            yield from structure_problems(sub, (*path, inote.index))
        for sub in without:
            yield from structure_problems(sub, path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            yield (*path, key), "unknown key"
    elif isinstance(exc, KeyError):
        yield path, "required key is missing"
    elif isinstance(exc, StrictTypeError):
        yield path, str(exc)
    elif isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from structure_problems(inner, path)
    elif isinstance(exc, TypeError | ValueError | AttributeError):
        yield path, f"invalid value ({exc})"
    else:
        raise exc
