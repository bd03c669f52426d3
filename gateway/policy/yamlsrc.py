"""YAML with line numbers: every mapping key and sequence item remembers its line.

PyYAML's ``compose`` keeps a mark on each node; we build plain Python values
from the node tree ourselves and record ``path -> (file, line)`` on the way,
so a validation error deep inside a rule can name the exact line. Duplicate
keys inside one mapping (which ``safe_load`` silently overwrites) are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathPart = str | int
DataPath = tuple[PathPart, ...]

MAX_VALUES = 100_000
"""The most values one file may build. A whole real bundle holds a few thousand;
aliases can make a file of a few hundred bytes name billions ("billion laughs",
each alias is built again where it is used), built on the caller's thread:
the serving worker's event loop for ``POST /admin/v1/policy/validate``."""


@dataclass(frozen=True, slots=True)
class PolicyError:
    """One problem in a bundle, formatted ``file:line path: message``."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass(slots=True)
class SourceMap:
    """Where each piece of merged data was written."""

    lines: dict[DataPath, tuple[str, int]] = field(default_factory=dict)
    rule_in_file: dict[int, int] = field(default_factory=dict)
    """Merged rule index -> the rule's index within its own file (``merge.py``)."""

    def locate(self, path: DataPath) -> tuple[str, int | None]:
        """The file and line of ``path``, or of its nearest recorded ancestor."""
        for end in range(len(path), -1, -1):
            hit = self.lines.get(path[:end])
            if hit is not None:
                return hit
        return ("<bundle>", None)

    def format(self, path: DataPath) -> str:
        """``path`` as the officer finds it in the file it names: rules are
        concatenated across files, and ``rules[2]`` of the merged list is the
        first rule of a file that follows one holding two."""
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            path = ("rules", self.rule_in_file.get(path[1], path[1]), *path[2:])
        return format_path(path)


def format_path(path: DataPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class PolicyYamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false.

    YAML 1.1 reads ``NO`` (Norway), ``ON``, ``YES``, ``Y`` and ``N`` as booleans,
    which silently turns ``countries: [NO]`` into ``[false]``.
    """


PolicyYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
PolicyYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class _TooManyValues(Exception):
    pass


class _Builder:
    def __init__(self, filename: str, loader: PolicyYamlLoader) -> None:
        self.filename = filename
        self.loader = loader
        self.lines: dict[DataPath, int] = {}
        self.errors: list[PolicyError] = []
        self.values = 0

    def build(self, node: yaml.Node, path: DataPath) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooManyValues
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, path)
                if not isinstance(key, str | int | bool | float) or key is None:
                    self.errors.append(
                        PolicyError(
                            self.filename,
                            key_node.start_mark.line + 1,
                            format_path(path),
                            f"unsupported mapping key {key!r}",
                        )
                    )
                    continue
                key = str(key).lower() if isinstance(key, bool) else str(key)
                if key in out:
                    self.errors.append(
                        PolicyError(
                            self.filename,
                            key_node.start_mark.line + 1,
                            format_path((*path, key)),
                            "duplicate key in the same mapping",
                        )
                    )
                    continue
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self.build(item, (*path, index)))
            return items
        return self.loader.construct_object(node, deep=True)


@dataclass(slots=True)
class ParsedFile:
    name: str
    data: Any
    lines: dict[DataPath, int]
    errors: list[PolicyError]


def _syntax_error(name: str, exc: yaml.MarkedYAMLError) -> PolicyError:
    """``_located_syntax_error`` with a hint in plain words for the usual slips."""
    error = _located_syntax_error(name, exc)
    problem = exc.problem or ""
    if "'\\t'" in problem:  # PyYAML writes the tab escaped
        hint = "YAML is indented with spaces only: replace the tab"
    elif problem.startswith("expected <block end>") and error.line is not None:
        # PyYAML names the parser's state; the slip is a key or item that does
        # not start in its block's column.
        hint = (
            f"check the indentation of line {error.line}: keys of one mapping, and items "
            "of one list, start in the same column as the ones above them"
        )
    else:
        return error
    return PolicyError(error.file, error.line, error.path, f"{error.message}; {hint}")


def _located_syntax_error(name: str, exc: yaml.MarkedYAMLError) -> PolicyError:
    """Where the mistake was made, not only where PyYAML gave up; both messages.

    An unclosed quote is found at end of file ("found unexpected end of
    stream"); the context ("while scanning a quoted scalar", line 34) is where
    the officer has to look. For a token the scanner could not finish, the
    context line leads; for a parser error ("while parsing a block mapping"),
    the context is only the enclosing block and the problem line leads.
    """
    problem = exc.problem or "invalid YAML"
    problem_line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
    if not exc.context or exc.context_mark is None:
        return PolicyError(name, problem_line, "", f"YAML syntax error: {problem}")
    context_line = exc.context_mark.line + 1
    if problem_line is None or problem_line == context_line:
        return PolicyError(name, context_line, "", f"YAML syntax error: {exc.context}: {problem}")
    if exc.context.startswith("while scanning") or "end of stream" in problem:
        message = f"{exc.context}: {problem} (at line {problem_line})"
        return PolicyError(name, context_line, "", f"YAML syntax error: {message}")
    message = f"{problem} ({exc.context} started at line {context_line})"
    return PolicyError(name, problem_line, "", f"YAML syntax error: {message}")


def parse_file(path: Path, display_name: str | None = None) -> ParsedFile:
    """Parse one YAML file into plain data plus a line for every key and item."""
    name = display_name or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ParsedFile(name, None, {}, [PolicyError(name, None, "", f"cannot read: {exc}")])
    loader = PolicyYamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return ParsedFile(name, None, {}, [])
        builder = _Builder(name, loader)
        data = builder.build(node, ())
        return ParsedFile(name, data, builder.lines, builder.errors)
    except _TooManyValues:
        message = f"expands to more than {MAX_VALUES} values (YAML aliases repeat what they name)"
        return ParsedFile(name, None, {}, [PolicyError(name, None, "", message)])
    except yaml.MarkedYAMLError as exc:
        return ParsedFile(name, None, {}, [_syntax_error(name, exc)])
    except yaml.YAMLError as exc:
        return ParsedFile(name, None, {}, [PolicyError(name, None, "", f"YAML error: {exc}")])
    finally:
        loader.dispose()
