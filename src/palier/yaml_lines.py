"""Where a problem sits in a YAML text: the line of a field path such as ``rules[2].conditions.weekdays``.

The console's editors show each problem at its line, highlighted, and ``palier program apply`` prints it as
``rules.yaml:12``, so the merchant does not hunt for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Problem:
    """One problem of a document: its line (1-based, None when it has none), field, code and message."""

    line: int | None
    field: str
    code: str
    message: str


def parts_of(path: str) -> list[str | int]:
    return [int(index) if index else name for name, index in _PART.findall(path)]


def syntax_problem(text: str) -> Problem | None:
    """The YAML syntax error of ``text``, at its line, or None if it parses."""
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        return Problem(line=line, field="document", code="invalid_yaml", message=str(reason))
    except ValueError as exc:  # a date that does not exist (2026-13-01): YAML reads it as one, and fails
        return Problem(line=bad_value_line(text), field="document", code="invalid_yaml", message=str(exc))
    except RecursionError:  # thousands of nested brackets: no document is written so
        return Problem(line=None, field="document", code="invalid_yaml", message=TOO_DEEP)
    return None


TOO_DEEP = "lists or mappings nested too deeply"


def bad_value_line(text: str) -> int | None:
    """The 1-based line of the first value YAML cannot build (a date such as 2026-02-30), or None."""
    try:
        root: Node | None = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return None
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop(0)
        if isinstance(node, MappingNode):
            stack[:0] = [part for pair in node.value for part in pair]
        elif isinstance(node, SequenceNode):
            stack[:0] = list(node.value)
        elif isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:timestamp":
            try:
                yaml.SafeLoader("").construct_yaml_timestamp(node)
            except ValueError:
                return node.start_mark.line + 1
    return None


def line_of(text: str, path: str) -> int | None:
    """The 1-based line of ``path`` in ``text``: the deepest part of the path that exists there."""
    try:
        node: Node | None = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return None
    line = node.start_mark.line
    for part in parts_of(path):
        if isinstance(node, MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if getattr(key, "value", None) == part:
                    line, node = key.start_mark.line, value
                    break
            else:
                break
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def duplicate_keys(text: str) -> list[tuple[str, int, int]]:
    """The keys written twice in one mapping of ``text``, as (field path, first line, line again), in the order
    they come: YAML and JSON keep the last without a word, so a pasted second ``conditions`` would drop the
    first. Aliases are walked once (``<<`` merges are left to YAML)."""
    try:  # libyaml's composer when installed: a 500-rule JSON body in a tenth of the time
        root: Node | None = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError):
        return []
    found: list[tuple[str, int, int]] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")] if root is not None else []
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        children: list[tuple[Node, str]] = []
        if isinstance(node, MappingNode):
            lines: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, ScalarNode) else None
                here = f"{path}.{name}" if path else str(name)
                if name is not None and name != "<<":
                    if name in lines:
                        found.append((here, lines[name], key.start_mark.line + 1))
                    else:
                        lines[name] = key.start_mark.line + 1
                children.append((value, here))
        elif isinstance(node, SequenceNode):
            children = [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        stack.extend(reversed(children))
    return sorted(found, key=lambda problem: problem[2])
