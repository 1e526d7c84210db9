"""Parse a policy file's text into a ``Policy``, reporting every problem with its line.

Pure: the caller reads the file (``isthmus policy`` does) and passes its text and name.

    try:
        policy = parse_policy(text, source="policies/prod.yaml")
    except PolicyError as err:
        for problem in err.problems:
            print(problem)  # policies/prod.yaml:12:13: objective.energy: must be >= 0, got -1

The YAML is composed once into a node tree (which keeps line and column marks) and
constructed into plain data from that tree; pydantic validates the data
(``scheduler.core.policy.schema``) and each error location is walked back through the node
tree to the line it came from. A YAML syntax error is one problem; otherwise every problem in
the file is reported, in file order.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from scheduler.core.policy.model import Policy
from scheduler.core.policy.schema import AT, PolicyFile, to_policy

Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy file. ``line`` and ``column`` are 1-based; ``path`` is
    the key path (``residency[1].allow.regions``), empty for the file as a whole."""

    source: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(ValueError):
    """A policy file is not valid; ``problems`` lists everything wrong with it."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """The policy a file's text describes. An empty file is the default policy.

    Raises ``PolicyError`` listing every problem (YAML syntax, unknown keys, wrong types,
    out-of-range values, inconsistent rules).
    """
    return to_policy(parse_policy_file(text, source))


def parse_policy_file(text: str, source: str = "<policy>") -> PolicyFile:
    """The validated file model (before conversion); same errors as ``parse_policy``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        problems = list(_duplicate_keys(node, (), source)) if node is not None else []
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        raise PolicyError([_syntax_problem(err, source)]) from None
    except yaml.YAMLError as err:  # e.g. a ReaderError: a control character in the text
        position = getattr(err, "position", 0)
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        raise PolicyError([Problem(source, line, column, "", f"not valid YAML: {err}")]) from None
    finally:
        loader.dispose()

    if data is None:
        data = {}
    try:
        file = PolicyFile.model_validate(data)
    except ValidationError as err:
        problems.extend(_problem(error, node, source) for error in err.errors())
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: (p.line, p.column)))
    return file


# --- YAML ---------------------------------------------------------------------------------


def _syntax_problem(err: yaml.MarkedYAMLError, source: str) -> Problem:
    mark = err.problem_mark or err.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    parts = [part for part in (err.context, err.problem) if part]
    message = "; ".join(parts) if parts else "cannot parse"
    return Problem(source, line, column, "", f"YAML syntax error: {message}")


def _duplicate_keys(node: yaml.Node, loc: Loc, source: str) -> Iterator[Problem]:
    """PyYAML keeps the last of two equal keys without a word; an operator wants to know."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            if key.value in first:
                mark = key.start_mark
                yield Problem(
                    source,
                    mark.line + 1,
                    mark.column + 1,
                    format_path((*loc, key.value)),
                    f"duplicate key '{key.value}' (first at line "
                    f"{first[key.value].start_mark.line + 1}); only one may be given",
                )
            else:
                first[key.value] = key
            yield from _duplicate_keys(value, (*loc, key.value), source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, i), source)


def _find(root: yaml.Node | None, loc: Loc) -> tuple[yaml.Node | None, yaml.Node | None, Loc]:
    """Walk ``loc`` down the node tree: (deepest node reached, its key node, the part of
    ``loc`` found, with mapping keys as strings so that ``7:`` prints as a key, not an index)."""
    node, key_node = root, None
    found: Loc = ()
    for item in loc:
        if isinstance(node, yaml.MappingNode):
            matches = [(k, v) for k, v in node.value if str(getattr(k, "value", None)) == str(item)]
            if not matches:
                break
            key_node, node = matches[-1]  # the last of duplicate keys wins, as in PyYAML
            found = (*found, str(item))
        elif isinstance(node, yaml.SequenceNode) and isinstance(item, int):
            if not 0 <= item < len(node.value):
                break
            node, key_node = node.value[item], None
            found = (*found, item)
        else:
            break
    return node, key_node, found


# --- pydantic errors -> problems ----------------------------------------------------------

_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_\-]+\Z")


def format_path(loc: Loc) -> str:
    """``('residency', 1, 'allow', 'regions')`` -> ``residency[1].allow.regions``."""
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif _SIMPLE_KEY.match(item):
            out += f".{item}" if out else item
        else:
            out += f'["{item}"]'
    return out


def _problem(error: ErrorDetails, root: yaml.Node | None, source: str) -> Problem:
    loc: Loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    on_key = bool(loc) and loc[-1] == "[key]"  # a mapping key itself is wrong
    if on_key:
        loc = loc[:-1]
    if AT in ctx:
        loc = (*loc, *ctx[AT])

    node, key_node, found_loc = _find(root, loc)
    found = len(found_loc) == len(loc)
    if found:
        loc = found_loc
    error_type = error["type"]
    if found and key_node is not None and (on_key or error_type == "extra_forbidden"):
        mark_node: yaml.Node | None = key_node
    elif found and key_node is not None and _is_empty(node):
        mark_node = key_node  # `objective:` with nothing after it: point at the key
    else:
        mark_node = node
    mark = mark_node.start_mark if mark_node is not None else None
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Problem(source, line, column, format_path(loc), _message(error, loc))


def _is_empty(node: yaml.Node | None) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null") and not node.value


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string '{value}'"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


_EXPECTED = {
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "dict_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "finite_number": "a finite number",
}
_BOUNDS = {
    "greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<=",
}


def _message(error: ErrorDetails, loc: Loc) -> str:
    error_type, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if error_type == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _allowed_keys(loc[:-1]))
    if error_type == "missing":
        return "required key is missing"
    if error_type in _EXPECTED:
        message = f"expected {_EXPECTED[error_type]}, got {_describe(value)}"
        if error_type == "string_type" and isinstance(value, bool):
            message += " (YAML reads yes/no/on/off/true/false as booleans; quote the word)"
        elif value is None and error_type in {"model_type", "dict_type", "list_type"}:
            message += "; remove the key to use the defaults"
        return message
    if error_type in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        return f"must be {_BOUNDS[error_type]} {_describe(bound)}, got {_describe(value)}"
    if error_type == "too_short":
        return f"needs at least {ctx.get('min_length')} items, got {ctx.get('actual_length')}"
    if error_type == "string_too_short":
        return "must not be empty"
    message = error["msg"]
    if error_type == "value_error":
        message = message.removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _unknown_key(key: str, allowed: Sequence[str]) -> str:
    if not allowed:
        return f"unknown key '{key}'"
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}; allowed keys: {', '.join(allowed)}"


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the section at ``loc`` accepts, found by walking the models' annotations."""
    annotation: Any = PolicyFile
    for item in loc:
        annotation = _strip(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = next(
                (f for name, f in annotation.model_fields.items() if (f.alias or name) == item),
                None,
            )
            if field is None:
                return []
            annotation = field.annotation
        elif typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return []
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or name for name, f in annotation.model_fields.items()]
    return []


def _strip(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> ``X``; ``X | None`` -> ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


__all__ = ["PolicyError", "Problem", "format_path", "parse_policy", "parse_policy_file"]
