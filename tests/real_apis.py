"""What the real `nvidia.nvcomp`, `kvikio` and `cupy` offer, read from the libraries
themselves, and checkers that hold the test doubles to it.

A double that accepts what the real library refuses lets code pass in CI that fails on a
GPU. So every class, function, method, keyword and argument type a double offers is
compared with the real one:

- nvCOMP is a pybind11 module: its signatures are the first lines of each `__doc__`
  (`name(self: nvidia.nvcomp.nvcomp_impl.Codec, source: ...Array) -> int`, or "Overloaded
  function." and numbered overloads), parsed by `parse_pybind_doc`.
- kvikio is read from its wheel's Python sources with `ast` (`source_model`), never
  imported (importing it needs its 1.4 GB of CUDA libraries).
- cupy is imported in a child process only (`cupy_api`), so this test session's
  `import cupy` keeps failing as the rest of the suite expects on a machine without it;
  its Cython functions carry their signatures as the first line of `__doc__`.

Checkers return lists of problems, one sentence each naming the double's member, so a
test can assert the list is empty and show every difference at once.
"""

from __future__ import annotations

import ast
import enum
import inspect
import json
import os
import re
import subprocess
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

P = inspect.Parameter
POS_ONLY, POS_OR_KW, VAR_POS, KW_ONLY, VAR_KW = (
    P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD, P.VAR_POSITIONAL, P.KEYWORD_ONLY,
    P.VAR_KEYWORD)

#: a double may declare, as `__test_only__` (dotted names: "calls", "Codec.calls"), the
#: data it keeps for the tests themselves (call records, switches); those are exempt from
#: "the real library has no such name" as long as they are data, not callables, and the
#: real library really lacks them
TEST_ONLY = "__test_only__"


# -- signatures ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One parameter as the real library documents it."""

    name: str
    kind: inspect._ParameterKind = POS_OR_KW
    annotation: str | None = None  # the text, as written
    default: str | None = None  # normalized text (see `normalize_default`); None: required

    def __str__(self) -> str:
        star = {VAR_POS: "*", VAR_KW: "**"}.get(self.kind, "")
        text = star + self.name + (f": {self.annotation}" if self.annotation else "")
        return text + (f" = {self.default}" if self.default is not None else "")


@dataclass(frozen=True)
class Overload:
    """One signature of a real callable (without self)."""

    params: tuple[Param, ...]
    returns: str | None = None
    #: the keywords its **kwargs documents (pybind `Codec(**kwargs)`: the "Args:" list)
    keywords: frozenset[str] | None = None

    def __str__(self) -> str:
        parts, kinds = [], [p.kind for p in self.params]
        for i, p in enumerate(self.params):
            if p.kind == KW_ONLY and VAR_POS not in kinds and KW_ONLY not in kinds[:i]:
                parts.append("*")
            parts.append(str(p))
            if p.kind == POS_ONLY and (i + 1 == len(kinds) or kinds[i + 1] != POS_ONLY):
                parts.append("/")
        return f"({', '.join(parts)})" + (f" -> {self.returns}" if self.returns else "")


def default_text(value: object) -> str:
    """A default value as text comparable across sources (types by name, else repr)."""
    if isinstance(value, type):
        return value.__name__
    return repr(value)


def normalize_default(text: str) -> str:
    """A default as written in a docstring or source, in `default_text`'s form."""
    text = text.strip()
    try:
        return default_text(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """`text` split at `sep` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>" and not (ch == ">" and text[i - 1] == "-"):
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_param_list(text: str) -> tuple[Param, ...]:
    """The parameters of a documented signature: pybind11's `name: type = default`,
    Python's `name=default`, Cython's `int name=default`, with `*`, `/`, `*args`,
    `**kwargs` (and `\\*` as Sphinx escapes it)."""
    params: list[Param] = []
    keyword_only = False
    for raw in split_top_level(text.replace("\\*", "*")):
        if raw == "/":
            params = [Param(p.name, POS_ONLY, p.annotation, p.default) for p in params]
            continue
        if raw == "*":
            keyword_only = True
            continue
        kind = KW_ONLY if keyword_only else POS_OR_KW
        if raw.startswith("**"):
            kind, raw = VAR_KW, raw[2:]
        elif raw.startswith("*"):
            kind, raw, keyword_only = VAR_POS, raw[1:], True
        head, default = raw, None
        eq = _top_level_equals(raw)
        if eq >= 0:
            head, default = raw[:eq].strip(), normalize_default(raw[eq + 1 :])
        name, _, annotation = head.partition(":")
        name, annotation = name.strip(), annotation.strip() or None
        if " " in name:  # Cython: `int device_id`
            ctype, name = name.rsplit(None, 1)
            annotation = annotation or ctype
        params.append(Param(name, kind, annotation, default))
    return tuple(params)


def _top_level_equals(text: str) -> int:
    """Where the default starts (`=` outside brackets and quotes), or -1."""
    depth, quote = 0, ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "=" and depth == 0 and text[i - 1 : i] not in ("!", "<", ">", "="):
            return i
    return -1


def parse_signature(line: str, name: str | None = None) -> Overload | None:
    """`name(params) -> returns` (a docstring's signature line) as an Overload, or None
    when the line is not one. `name=None` takes any name (or none: a property's
    `(arg0: X) -> list[int]`); a qualified `_ndarray_base.get(...)` matches name `get`."""
    line = line.strip()
    pattern = r"(?:[\w.]*\.)?" + (re.escape(name) if name else r"\w*") + r"\("
    match = re.match(pattern, line)
    if match is None:
        return None
    start = match.end() - 1
    depth, end, quote = 0, -1, ""
    for i in range(start, len(line)):
        ch = line[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                end = i
                break
    if end < 0:
        return None
    rest = line[end + 1 :].strip()
    returns = rest[2:].strip() if rest.startswith("->") else None
    return Overload(parse_param_list(line[start + 1 : end]), returns)


def documented_keywords(doc: str) -> frozenset[str]:
    """The `name:` entries of a docstring (the keywords a `**kwargs` takes)."""
    found = re.findall(r"^\s+(\w+):\s", doc, flags=re.MULTILINE)
    return frozenset(found) - {"Args", "Returns", "Raises", "Members", "Note", "Example"}


def parse_pybind_doc(doc: str | None, name: str) -> list[Overload]:
    """The overloads a pybind11 docstring documents (with `self` if the doc has it):
    one signature line, or "Overloaded function." and numbered `N. name(...)` lines.
    A **kwargs gets the keywords its docstring lists."""
    if not doc:
        return []
    lines = doc.strip().splitlines()
    if "Overloaded function." in doc and lines[0].strip().startswith(f"{name}(*args, **kwargs)"):
        signatures = [m.group(1) for m in re.finditer(
            rf"^\s*\d+\.\s+({re.escape(name)}\(.*)$", doc, flags=re.MULTILINE)]
        sections = re.split(rf"^\s*\d+\.\s+{re.escape(name)}\(", doc, flags=re.MULTILINE)[1:]
    else:
        signatures, sections = [lines[0]], [doc]
    overloads = []
    for text, section in zip(signatures, sections, strict=True):
        overload = parse_signature(text, name or None)
        if overload is None:
            continue
        if any(p.kind == VAR_KW for p in overload.params):
            overload = Overload(overload.params, overload.returns, documented_keywords(section))
        overloads.append(overload)
    return overloads


def without_self(overload: Overload) -> Overload:
    """The overload without its first parameter (a method's self)."""
    return Overload(overload.params[1:], overload.returns, overload.keywords)


def signature_params(sig: inspect.Signature) -> tuple[Param, ...]:
    """A Python signature's parameters as Params (annotations as text)."""
    out = []
    for p in sig.parameters.values():
        annotation = None if p.annotation is P.empty else _annotation_text(p.annotation)
        default = None if p.default is P.empty else default_text(p.default)
        out.append(Param(p.name, p.kind, annotation, default))
    return tuple(out)


def _annotation_text(annotation: object) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


# -- what a real library offers --------------------------------------------------------------

@dataclass
class RealFunction:
    overloads: list[Overload]
    typed: bool  # annotations are the types the library enforces (pybind11)


@dataclass
class RealProperty:
    returns: str | None = None
    writable: bool = False


@dataclass
class RealValue:
    member_of: str | None = None  # an enum member: the name of the class it belongs to
    type_name: str | None = None


@dataclass
class RealOpaque:
    """A name the library has, whose shape cannot be read (compiled, no docstring)."""


@dataclass
class RealClass:
    name: str
    members: dict[str, Any] = field(default_factory=dict)
    init: RealFunction | None = None  # None: cannot be constructed from Python


@dataclass
class RealModule:
    name: str
    members: dict[str, Any] = field(default_factory=dict)


RealItem = RealFunction | RealProperty | RealValue | RealOpaque | RealClass | RealModule

#: members every class has, not part of any library's API
_BOOKKEEPING = frozenset({
    "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__slots__",
    "__annotations__", "__firstlineno__", "__static_attributes__", "__dataclass_fields__",
    "__dataclass_params__", "__match_args__", "__orig_bases__", "__parameters__",
    "__type_params__", "__annotate__", "__entries", "_pybind11_conduit_v1_", "__members__",
    "__abstractmethods__", "_abc_impl"})
#: the dunders that make up an API (protocols callers rely on); others (repr, pickling,
#: hashing, attribute access) are not compared
CHECKED_DUNDERS = frozenset({
    "__init__", "__call__", "__len__", "__getitem__", "__setitem__", "__delitem__",
    "__iter__", "__next__", "__contains__", "__enter__", "__exit__", "__eq__", "__ne__",
    "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__int__", "__index__", "__float__",
    "__complex__", "__array__", "__array_interface__", "__cuda_array_interface__",
    "__dlpack__", "__dlpack_device__", "__buffer__", "__fspath__", "__await__"})


def _is_pybind_callable(value: object) -> bool:
    return type(value).__name__ in ("instancemethod", "builtin_function_or_method")


def pybind_class(cls: type) -> RealClass:
    """A pybind11 class: methods and properties from their docstrings, enum members."""
    real = RealClass(cls.__name__)
    for name, value in vars(cls).items():
        if name in _BOOKKEEPING:
            continue
        if isinstance(value, property):
            fget = parse_pybind_doc(getattr(value.fget, "__doc__", None), "")
            real.members[name] = RealProperty(fget[0].returns if fget else None,
                                              value.fset is not None)
        elif name == "__init__":
            overloads = [without_self(o) for o in parse_pybind_doc(value.__doc__, name)]
            real.init = RealFunction(overloads, typed=True) if overloads else None
        elif _is_pybind_callable(value):
            overloads = [without_self(o) for o in parse_pybind_doc(value.__doc__, name)]
            real.members[name] = RealFunction(overloads, typed=True) if overloads else RealOpaque()
        elif isinstance(value, cls):
            real.members[name] = RealValue(member_of=cls.__name__, type_name=cls.__name__)
        elif isinstance(value, type):
            real.members[name] = pybind_class(value)
        elif type(value).__name__ == "pybind11_static_property":
            real.members[name] = RealProperty()
        else:
            real.members[name] = RealValue(type_name=type(value).__name__)
    return real


def pybind_model(module: types.ModuleType) -> RealModule:
    """Everything public a pybind11 module offers (nvidia.nvcomp)."""
    real = RealModule(module.__name__)
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            continue
        if isinstance(value, type):
            real.members[name] = pybind_class(value)
        elif _is_pybind_callable(value):
            overloads = parse_pybind_doc(value.__doc__, name)
            real.members[name] = RealFunction(overloads, typed=True) if overloads else RealOpaque()
        else:
            real.members[name] = RealValue(type_name=type(value).__name__)
    return real


# -- kvikio: its sources, read with ast ------------------------------------------------------

def _ast_overload(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Overload:
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
    defaults += list(a.defaults)
    params = []
    for i, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        params.append(Param(arg.arg, POS_ONLY if i < len(a.posonlyargs) else POS_OR_KW,
                            _unparse(arg.annotation),
                            None if default is None else normalize_default(ast.unparse(default))))
    if a.vararg:
        params.append(Param(a.vararg.arg, VAR_POS, _unparse(a.vararg.annotation)))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        params.append(Param(arg.arg, KW_ONLY, _unparse(arg.annotation),
                            None if default is None else normalize_default(ast.unparse(default))))
    if a.kwarg:
        params.append(Param(a.kwarg.arg, VAR_KW, _unparse(a.kwarg.annotation)))
    return Overload(tuple(params), _unparse(node.returns))


def _unparse(node: ast.expr | None) -> str | None:
    return None if node is None else ast.unparse(node)


def _decorators(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[str]:
    return {ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list}


def _functions(body: list[ast.stmt]) -> dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]:
    found: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.setdefault(node.name, []).append(node)
    return found


def _ast_class(node: ast.ClassDef) -> RealClass:
    real = RealClass(node.name)
    for name, defs in _functions(node.body).items():
        decorators = set().union(*(_decorators(d) for d in defs))
        if "property" in decorators or any(d.endswith(".getter") for d in decorators):
            writable = f"{name}.setter" in decorators
            real.members[name] = RealProperty(_unparse(defs[0].returns), writable)
            continue
        static = "staticmethod" in decorators
        overloads = [_ast_overload(d) for d in defs]
        if not static:
            overloads = [without_self(o) for o in overloads]
        function = RealFunction(overloads, typed=False)
        if name == "__init__":
            real.init = function
        else:
            real.members[name] = function
    for stmt in node.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else (
            [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
        for target in targets:
            if isinstance(target, ast.Name) and target.id != "__slots__":
                real.members.setdefault(target.id, RealValue())
    for sub in ast.walk(node):  # instance attributes: self.NAME = ...
        if isinstance(sub, (ast.Assign, ast.AnnAssign)):
            for target in sub.targets if isinstance(sub, ast.Assign) else [sub.target]:
                if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                        and target.value.id == "self"):
                    real.members.setdefault(target.attr, RealValue())
    if real.init is None:
        real.init = RealFunction([Overload(())], typed=False)  # object's: no arguments
    for inner in node.body:
        if isinstance(inner, ast.ClassDef):
            real.members[inner.name] = _ast_class(inner)
    return real


def source_module(path: Path, name: str) -> RealModule:
    """One module's top-level functions (with their @overload signatures), classes,
    assignments and imported names, from its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    real = RealModule(name)
    for func_name, defs in _functions(tree.body).items():
        real.members[func_name] = RealFunction([_ast_overload(d) for d in defs], typed=False)
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            real.members[node.name] = _ast_class(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    real.members.setdefault(target.id, RealValue())
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                real.members.setdefault(bound, RealOpaque())
    return real


def source_model(package_dir: Path) -> RealModule:
    """A pure-Python package's API from its sources (its submodules, and the names its
    __init__ imports from them, resolved to their definitions)."""
    package = package_dir.name
    submodules = {p.stem: source_module(p, f"{package}.{p.stem}")
                  for p in sorted(package_dir.glob("*.py")) if p.stem != "__init__"}
    init = package_dir / "__init__.py"
    real = source_module(init, package) if init.exists() else RealModule(package)
    real.members.update(submodules)
    if init.exists():
        for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package + "."):
                sub = submodules.get(node.module.split(".")[1]) if node.module else None
                for alias in node.names:
                    item = sub.members.get(alias.name) if sub else None
                    real.members[alias.asname or alias.name] = item or RealOpaque()
    return real


def documented_config_keys(path: Path) -> frozenset[str]:
    """The configuration names kvikio.defaults.get's docstring lists (``"name"``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "get":
            return frozenset(re.findall(r'``"(\w+)"``', ast.get_docstring(node) or ""))
    return frozenset()


# -- holding a double to a real model --------------------------------------------------------

_NONE = type(None)


class _Missing:
    """A real type the double has no class for."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<no {self.name} in the double>"


def expected_type(text: str, double: types.ModuleType, prefix: str) -> object:
    """The Python type in the double that a real annotation's text stands for:
    `prefix + X` -> the double's class X, builtins as themselves, `object` -> Any,
    `list[T]`, `Optional[T]`. Unknown text comes back as the text itself."""
    text = text.strip()
    simple = {"int": int, "str": str, "bool": bool, "float": float, "bytes": bytes,
              "object": Any, "None": None, "type": type}
    if text in simple:
        return simple[text]
    match = re.fullmatch(r"(list|List|Optional|tuple|dict)\[(.*)\]", text)
    if match:
        outer, inner = match.groups()
        args = [expected_type(t, double, prefix) for t in split_top_level(inner)]
        if outer == "Optional":
            return _union(args[0], None)
        origin = {"list": list, "List": list, "tuple": tuple, "dict": dict}[outer]
        return origin[tuple(args) if len(args) > 1 else args[0]]  # type: ignore[index]
    if text.startswith(prefix):
        name = text[len(prefix):]
        return getattr(double, name, _Missing(name))
    return text


def _union(a: object, b: object) -> object:
    return typing.Union[a, b]  # noqa: UP007 (runtime values, maybe not types)


def _members(annotation: object) -> frozenset[object]:
    """A (possibly union) annotation as the set of its members (None as NoneType)."""
    if annotation is None:
        return frozenset({_NONE})
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return frozenset(_NONE if a is None else a for a in typing.get_args(annotation))
    return frozenset({annotation})


def annotation_matches(double_annotation: object, real: object, real_default: str | None
                       ) -> bool:
    """Whether the double's annotation is the real type (or it or None, where the real
    parameter defaults to None); the real `object` takes any annotation."""
    if real is Any:
        return True
    if double_annotation is P.empty:
        return False
    got = _members(double_annotation)
    want = _members(real)
    return got == want or (real_default == "None" and got == want | {_NONE})


def _describe(annotation: object) -> str:
    return "nothing" if annotation is P.empty else _annotation_text(annotation)


def compare_signature(sig: inspect.Signature, real: Overload, typed: bool,
                      double: types.ModuleType, prefix: str) -> list[str]:
    """Why the double's signature (without self) is not the real overload: parameter
    names and order, kinds, defaults and, for typed (pybind11) libraries, annotations."""
    mine = list(sig.parameters.values())
    theirs = list(real.params)
    if real.keywords is not None and any(p.kind == VAR_KW for p in theirs):
        return _compare_keywords(mine, real)
    reasons = []
    if [p.kind for p in mine] != [p.kind for p in theirs] or len(mine) != len(theirs):
        reasons.append(f"parameters {_kinds(mine)}, the real's {_kinds(theirs)}")
    for i, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        if a.name != b.name and not (a.kind == b.kind == POS_ONLY):
            reasons.append(f"parameter {i + 1} is {a.name!r}, the real's {b.name!r}")
            continue
        got = None if a.default is P.empty else default_text(a.default)
        if got != b.default:
            reasons.append(f"{a.name!r} defaults to {got or 'nothing'}, "
                           f"the real's to {b.default or 'nothing'}")
        if typed and b.annotation is not None and b.kind not in (VAR_POS, VAR_KW):
            want = expected_type(b.annotation, double, prefix)
            if not annotation_matches(a.annotation, want, b.default):
                missing = (f" (the double has no {want.name})" if isinstance(want, _Missing)
                           else "")
                reasons.append(f"{a.name!r} is typed {_describe(a.annotation)}, the real's "
                               f"{b.annotation}{missing}")
    return reasons


def _kinds(params: Iterable[P | Param]) -> str:
    short = {POS_ONLY: "positional-only", POS_OR_KW: "", VAR_POS: "*", KW_ONLY: "keyword-only",
             VAR_KW: "**"}
    return "(" + ", ".join(f"{short[p.kind]} {p.name}".strip() for p in params) + ")"


def _compare_keywords(mine: list[P], real: Overload) -> list[str]:
    """A real `f(**kwargs)` documenting its keywords: the double may take those by
    keyword only (or **kwargs itself)."""
    reasons = []
    keywords = real.keywords or frozenset()
    for p in mine:
        if p.kind == VAR_KW:
            continue
        if p.kind == VAR_POS:
            reasons.append(f"takes *{p.name}; the real takes keywords only (**kwargs)")
            continue
        if p.kind != KW_ONLY:
            reasons.append(f"{p.name!r} can be passed positionally; the real takes keywords "
                           "only (**kwargs)")
        if p.name not in keywords:
            reasons.append(f"{p.name!r} is not a keyword the real documents")
    return reasons


@dataclass
class Probe:
    """A double's callable and the real overload it matched: what `probe_types` calls."""

    path: str
    owner: str | None  # the class (dotted) whose instance the method is called on
    name: str
    sig: inspect.Signature
    overload: Overload
    function: Callable[..., Any]  # a module function itself (owner None)


@dataclass
class Checker:
    """Holds a double module to a real model: `check()` lists every difference."""

    double: Any
    real: RealModule
    prefix: str = ""  # the real annotations' module path ("nvidia.nvcomp.nvcomp_impl.")
    #: builds an instance of a double class (by name), to see its instance attributes
    instances: Mapping[str, Callable[[], object]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)

    def check(self) -> list[str]:
        test_only = self._test_only()
        self.check_namespace(self.double, self.real, self.real.name, "", test_only)
        for name, make in self.instances.items():
            real = self._real_at(name)
            if not isinstance(real, RealClass):
                continue
            try:
                instance = make()
            except Exception as e:  # (reported, not raised)
                self.problems.append(f"{name}: no instance of the double's could be made ({e!r})")
                continue
            self.check_instance(instance, real, name, test_only)
        return self.problems

    def _test_only(self) -> frozenset[str]:
        names = frozenset(getattr(self.double, TEST_ONLY, ()))
        for name in sorted(names):
            value = self.double
            try:
                for part in name.split("."):
                    value = getattr(value, part)
            except AttributeError:
                self.problems.append(f"{TEST_ONLY} names {name}, which the double lacks")
                continue
            if callable(value):
                self.problems.append(f"{TEST_ONLY} may name data only, not the callable {name}")
            if self._real_at(name) is not None:
                self.problems.append(f"{TEST_ONLY} names {name}, which the real library has: "
                                     "it must be checked, not exempted")
        return names

    def _real_at(self, dotted: str) -> RealItem | None:
        item: Any = self.real
        for part in dotted.split("."):
            if not isinstance(item, (RealModule, RealClass)):
                return None
            item = item.members.get(part)
        return item

    def check_namespace(self, obj: Any, real: RealModule, label: str, path: str,
                        test_only: frozenset[str]) -> None:
        """A double module (or namespace) against a real module."""
        for name in defined_names(obj):
            dotted = f"{path}{name}"
            if dotted in test_only:
                continue
            value = getattr(obj, name)
            item = real.members.get(name)
            if item is None:
                self.problems.append(f"{dotted}: {label} has no {name}")
                continue
            self.check_member(value, value, item, dotted, method=False, test_only=test_only)

    def check_member(self, raw: Any, value: Any, item: RealItem, dotted: str, *, method: bool,
                     test_only: frozenset[str], owner: str | None = None) -> None:
        """One member of the double (raw: as found statically) against the real one."""
        if isinstance(item, RealOpaque):
            return
        if isinstance(raw, (property, types.DynamicClassAttribute)):
            if not isinstance(item, (RealProperty, RealValue)):
                self.problems.append(f"{dotted}: a property in the double; the real one is "
                                     f"{_what(item)}")
            elif isinstance(item, RealProperty) and raw.fset is not None and not item.writable:
                self.problems.append(f"{dotted}: settable in the double; the real property is "
                                     "read-only")
            return
        if isinstance(value, type) and isinstance(item, RealModule):
            self.check_namespace(value, item, item.name, dotted + ".", test_only)
            return
        if isinstance(value, type):
            if isinstance(item, RealClass):
                self.check_class(value, item, dotted, test_only)
            else:
                self.problems.append(f"{dotted}: a class in the double; the real one is "
                                     f"{_what(item)}")
            return
        if isinstance(value, types.ModuleType | types.SimpleNamespace):
            if isinstance(item, RealModule):
                self.check_namespace(value, item, item.name, dotted + ".", test_only)
            else:
                self.problems.append(f"{dotted}: a namespace in the double; the real one is "
                                     f"{_what(item)}")
            return
        if callable(value):
            if not isinstance(item, RealFunction):
                self.problems.append(f"{dotted}: callable in the double; the real one is "
                                     f"{_what(item)}")
                return
            drop = method and not isinstance(raw, (staticmethod, classmethod))
            self.check_callable(value, item, dotted, drop_first=drop,
                                owner=owner if drop else None)
            return
        if isinstance(item, RealFunction | RealClass | RealModule):
            self.problems.append(f"{dotted}: a plain value in the double; the real one is "
                                 f"{_what(item)}")
        elif isinstance(item, RealValue) and item.member_of is not None:
            cls = getattr(self.double, item.member_of, None)
            if not (isinstance(cls, type) and isinstance(value, cls)):
                self.problems.append(
                    f"{dotted}: the real one is a member of its enum {item.member_of}; the "
                    f"double's is {type(value).__name__} {value!r}")

    def check_callable(self, fn: Callable[..., Any], real: RealFunction, dotted: str, *,
                       drop_first: bool, owner: str | None = None) -> None:
        try:
            sig = inspect.signature(fn, eval_str=True)
        except (TypeError, ValueError, NameError) as e:
            self.problems.append(f"{dotted}: the double's signature cannot be read ({e})")
            return
        if drop_first:
            sig = sig.replace(parameters=list(sig.parameters.values())[1:])
        if not real.overloads:
            self.problems.append(f"{dotted}: the real one's signature could not be read")
            return
        failures = []
        for overload in real.overloads:
            reasons = compare_signature(sig, overload, real.typed, self.double, self.prefix)
            if not reasons:
                if real.typed:
                    self.probes.append(Probe(dotted, owner, dotted.rsplit(".", 1)[-1], sig,
                                             overload, fn))
                return
            failures.append(f"{overload}: " + "; ".join(reasons))
        shown = _signature_text(sig)
        self.problems.append(f"{dotted}{shown} matches no real overload: " + " | ".join(failures))

    def check_class(self, cls: type, real: RealClass, dotted: str,
                    test_only: frozenset[str], *, constructor: bool = True) -> None:
        """A double class: every public member, the API dunders it defines, its
        constructor (unless the class is not offered by name), against the real class."""
        for name in class_members(cls):
            member = f"{dotted}.{name}"
            if member in test_only:
                continue
            raw = inspect.getattr_static(cls, name)
            if name == "__init__":
                if constructor:
                    self._check_init(cls, real, member)
                continue
            item = real.members.get(name)
            if item is None:
                self.problems.append(f"{member}: the real {real.name} has no {name}")
                continue
            self.check_member(raw, getattr(cls, name), item, member, method=True,
                              test_only=test_only, owner=dotted)

    def _check_init(self, cls: type, real: RealClass, member: str) -> None:
        if issubclass(cls, enum.Enum):
            return  # an enum's call is a lookup by value, not its __init__
        if real.init is None:
            self.problems.append(f"{member}: the real {real.name} has no constructor (it "
                                 "cannot be built from Python); the double's can")
            return
        self.check_callable(cls.__init__, real.init, member, drop_first=True)

    def check_instance(self, obj: object, real: RealClass, dotted: str,
                       test_only: frozenset[str]) -> None:
        """A double instance's own attributes: each must be a real property or attribute,
        and what its properties give must be of the real type."""
        names = set(getattr(obj, "__dict__", {}))
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                names.add(slot)
        for name in sorted(n for n in names if not n.startswith("_")):
            member = f"{dotted}.{name}"
            if member in test_only:
                continue
            item = real.members.get(name)
            if item is None:
                self.problems.append(f"{member}: an instance attribute of the double; the "
                                     f"real {real.name} has no {name}")
            elif isinstance(item, RealProperty):
                self.problems.append(f"{member}: a plain instance attribute in the double; "
                                     f"the real one is a {'' if item.writable else 'read-only '}"
                                     "property")
            elif not isinstance(item, (RealValue, RealOpaque)):
                self.problems.append(f"{member}: an instance attribute of the double; the "
                                     f"real one is {_what(item)}")
        for name, item in real.members.items():
            if not isinstance(item, RealProperty) or item.returns is None:
                continue
            raw = _static_or_none(type(obj), name)
            if not isinstance(raw, property):
                continue
            want = expected_type(item.returns, self.double, self.prefix)
            value = getattr(obj, name)
            if not value_conforms(value, want):
                self.problems.append(f"{dotted}.{name}: gives {type(value).__name__} "
                                     f"{value!r}; the real property gives {item.returns}")


def _static_or_none(cls: type, name: str) -> object:
    try:
        return inspect.getattr_static(cls, name)
    except AttributeError:
        return None


def value_conforms(value: object, want: object) -> bool:
    """Whether a value is of an expected type (as `expected_type` gives it)."""
    if want is Any or isinstance(want, str):
        return True
    if isinstance(want, _Missing):
        return False
    origin = typing.get_origin(want)
    if origin in (typing.Union, types.UnionType):
        return any(value_conforms(value, a) for a in typing.get_args(want))
    if origin is list:
        (inner,) = typing.get_args(want)
        return isinstance(value, list) and all(value_conforms(v, inner) for v in value)
    if want is None or want is _NONE:
        return value is None
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want) if isinstance(want, type) else True


def _what(item: RealItem) -> str:
    return {RealFunction: "a function or method", RealProperty: "a property",
            RealValue: "a plain value", RealClass: "a class", RealModule: "a module",
            RealOpaque: "opaque"}[type(item)]


def _signature_text(sig: inspect.Signature) -> str:
    return "(" + ", ".join(str(Param(p.name, p.kind)) for p in sig.parameters.values()) + ")"


def defined_names(obj: Any) -> list[str]:
    """The public names a double module (or namespace) defines itself: not modules,
    not classes, functions or constants it imported."""
    own = getattr(obj, "__name__", None) if isinstance(obj, types.ModuleType) else None
    names = []
    for name, value in vars(obj).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        home = getattr(value, "__module__", None)
        if own is not None and isinstance(home, str) and home != own:
            continue
        names.append(name)
    return sorted(names)


def class_members(cls: type) -> list[str]:
    """A double class's public members and the API dunders it (not object) defines."""
    names = []
    for name in dir(cls):
        if name in _BOOKKEEPING or not any(name in vars(k) for k in cls.__mro__):
            continue  # (what the metaclass has, as an Enum's len(), is not the class's API)
        if name.startswith("__"):
            if name not in CHECKED_DUNDERS:
                continue
            if _static_or_none(cls, name) is _static_or_none(object, name):
                continue
        elif name.startswith("_"):
            continue
        names.append(name)
    return names


# -- calling the double with wrong types -----------------------------------------------------

_WRONG: dict[object, list[object]] = {
    int: [object(), "0", 0.5], str: [object(), 0], bool: [object()], float: [object(), "0"],
}


def wrong_values(want: object) -> list[object]:
    """Arguments pybind11 refuses where `want` is expected (None stays acceptable for an
    Optional)."""
    members = _members(want) - {_NONE}
    if len(members) != 1:
        return [object()]
    (base,) = members
    if base in _WRONG:
        return _WRONG[base]
    if typing.get_origin(base) is list:
        return [object(), "ab", [object()]]
    return [object(), 0]


def valid_value(want: object, makers: Mapping[str, Callable[[], object]],
                names: Iterable[str] = ()) -> object:
    """An argument of the expected type (`makers` by one of `names` first, such as
    "as_arrays.buffer" or "buffer", then by class name), or `Ellipsis` when none can be
    made."""
    for name in names:
        if name in makers:
            return makers[name]()
    members = _members(want) - {_NONE}
    if want is Any:
        return None
    if len(members) != 1:
        return ...
    (base,) = members
    simple = {int: 0, str: "", bool: True, float: 0.0}
    if base in simple:
        return simple[base]
    if typing.get_origin(base) is list:
        return []
    if isinstance(base, type) and base.__name__ in makers:
        return makers[base.__name__]()
    return ...


def probe_types(checker: Checker, makers: Mapping[str, Callable[[], object]]) -> list[str]:
    """Call every matched double callable with each typed parameter given a wrong-typed
    argument (the others valid): pybind11 raises TypeError ("incompatible function
    arguments") before doing anything, so must the double. And the valid call alone
    must not raise TypeError."""
    problems = []
    for probe in checker.probes:
        if probe.name == "__init__":
            continue
        wants = {p.name: expected_type(p.annotation, checker.double, checker.prefix)
                 if p.annotation else Any for p in probe.overload.params}
        if probe.owner is not None and probe.owner not in makers:
            problems.append(f"{probe.path}: no instance of {probe.owner} to call it on")
            continue

        def call(values: dict[str, object], probe: Probe = probe) -> None:
            target = (getattr(makers[probe.owner](), probe.name) if probe.owner
                      else probe.function)
            args, kwargs = [], {}
            for p in probe.sig.parameters.values():
                if p.name not in values:
                    continue
                if p.kind == POS_ONLY:
                    args.append(values[p.name])
                else:
                    kwargs[p.name] = values[p.name]
            target(*args, **kwargs)

        required = {}
        for p in probe.overload.params:
            if p.default is None and p.kind not in (VAR_POS, VAR_KW):
                required[p.name] = valid_value(wants[p.name], makers,
                                               (f"{probe.path}.{p.name}", p.name))
        if any(v is ... for v in required.values()):
            problems.append(f"{probe.path}: cannot build valid arguments to probe it")
            continue
        try:
            call(required)
        except TypeError as e:
            problems.append(f"{probe.path}: refuses valid arguments {required!r} ({e})")
            continue
        except Exception:  # (a valid-typed call may fail for other reasons)
            pass
        for p in probe.overload.params:
            want = wants[p.name]
            if want is Any or isinstance(want, str) or p.kind in (VAR_POS, VAR_KW):
                continue
            accepted, other = [], []
            for wrong in wrong_values(want):
                try:
                    call({**required, p.name: wrong})
                except TypeError:
                    continue
                except Exception as e:
                    other.append(f"{wrong!r} -> {type(e).__name__}")
                    continue
                accepted.append(repr(wrong))
            if accepted or other:
                what = ", ".join([*(f"{a} accepted" for a in accepted), *other])
                problems.append(f"{probe.path}({p.name}=...): wrong types reach the double "
                                f"({what}); the real takes {p.annotation} and raises TypeError")
    return problems


# -- cupy (in a child process) ---------------------------------------------------------------

@dataclass(frozen=True)
class CupyMember:
    """What cupy has at a dotted path."""

    exists: bool
    kind: str = "missing"  # function, class, property, value, missing
    params: tuple[Param, ...] | None = None  # None: signature unknown


def _doc_signature(obj: Any, name: str) -> tuple[Param, ...] | None:
    try:
        return signature_params(inspect.signature(obj))
    except (TypeError, ValueError):
        pass
    lines = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    found = parse_signature(lines[0], name) if lines else None
    return None if found is None else found.params


def _describe_cupy(root: Any, dotted: str) -> dict[str, Any]:
    owner: Any = None
    value: Any = root
    parts = dotted.split(".")
    for part in parts:
        owner = value
        try:
            value = inspect.getattr_static(owner, part) if isinstance(owner, type) else getattr(
                owner, part)
        except AttributeError:
            documented = isinstance(owner, type) and part in _documented_attributes(owner)
            return {"exists": documented, "kind": "value" if documented else "missing"}
    name = parts[-1]
    if isinstance(owner, type) and name == "__init__":
        doc_line = (owner.__doc__ or "").strip().splitlines()[:1]
        found = parse_signature(doc_line[0], "__init__") if doc_line else None
        params = found.params if found else _doc_signature(value, name)
        if params and params[0].name == "self":
            params = params[1:]
        return {"exists": True, "kind": "function", "params": _params_json(params)}
    if isinstance(value, type):
        return {"exists": True, "kind": "class"}
    if isinstance(value, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
        return {"exists": True, "kind": "property"}
    if value is None:
        return {"exists": False, "kind": "missing"}
    if callable(value) or isinstance(value, (staticmethod, classmethod)):
        target = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        params = _doc_signature(target, name)
        if params and isinstance(owner, type) and params[0].name in ("self", "cls"):
            params = params[1:]
        return {"exists": True, "kind": "function", "params": _params_json(params)}
    return {"exists": True, "kind": "value"}


def _documented_attributes(cls: type) -> set[str]:
    """The attributes a class's docstring lists under "Attributes:" (instance attributes
    of a compiled class are invisible on the class itself)."""
    doc = cls.__doc__ or ""
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    return set(re.findall(r"^\s+~?(?:\w+\.)?(\w+) \(", section, flags=re.MULTILINE))


def _params_json(params: tuple[Param, ...] | None) -> list[list[Any]] | None:
    if params is None:
        return None
    return [[p.name, int(p.kind), p.default] for p in params]


def _worker() -> None:
    """In the child process: describe each dotted path read from stdin, as JSON."""
    import cupy  # only here, in the child

    paths = json.load(sys.stdin)
    print(json.dumps({path: _describe_cupy(cupy, path) for path in paths}))


def cupy_api(paths: Iterable[str], site: Path) -> dict[str, CupyMember]:
    """What cupy, installed (not imported here) under `site`, has at each dotted path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).parent)])}
    result = subprocess.run(
        [sys.executable, "-c", "import real_apis; real_apis._worker()"],
        input=json.dumps(sorted(set(paths))), capture_output=True, text=True, env=env,
        cwd=site, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"cupy could not be described: {result.stderr[-3000:]}")
    out = {}
    for path, d in json.loads(result.stdout.strip().splitlines()[-1]).items():
        params = None if d.get("params") is None else tuple(
            Param(n, inspect._ParameterKind(k), None, default) for n, k, default in d["params"])
        out[path] = CupyMember(d["exists"], d["kind"], params)
    return out


#: (parameter, numpy's default, cupy's default) that mean the same: numpy's dtype=None is
#: float64 for the creation functions, cupy writes float
SAME_DEFAULTS = frozenset({("dtype", "None", "float")})


def accepted_by(mine: tuple[Param, ...], theirs: tuple[Param, ...]) -> list[str]:
    """Why calls the stand-in's signature accepts are not all accepted by cupy's: every
    positional slot, keyword and omitted default the stand-in takes must be cupy's too,
    and cupy may not require a parameter the stand-in does not have."""
    reasons = []
    positional = [p for p in theirs if p.kind in (POS_ONLY, POS_OR_KW)]
    by_name = {p.name: p for p in theirs if p.kind in (POS_OR_KW, KW_ONLY)}
    var_pos = any(p.kind == VAR_POS for p in theirs)
    var_kw = any(p.kind == VAR_KW for p in theirs)
    index = 0
    for p in mine:
        if p.kind in (POS_ONLY, POS_OR_KW):
            other = positional[index] if index < len(positional) else None
            index += 1
            if other is None:
                if not var_pos:
                    reasons.append(f"takes {p.name!r} as positional argument {index}; cupy "
                                   f"takes {len(positional)} positionally")
                continue
            if p.kind == POS_OR_KW and not var_kw and (other.name != p.name
                                                       or other.kind != POS_OR_KW):
                what = "positional-only" if other.name == p.name else f"named {other.name!r}"
                reasons.append(f"takes {p.name!r} by keyword; cupy's positional argument "
                               f"{index} is {what}")
                continue
            theirs_p = other
        elif p.kind == KW_ONLY:
            theirs_p = by_name.get(p.name)
            if theirs_p is None and not var_kw:
                reasons.append(f"takes keyword {p.name!r}; cupy does not")
                continue
        elif p.kind == VAR_POS:
            if not var_pos:
                reasons.append(f"takes *{p.name}; cupy takes no extra positional arguments")
            continue
        else:
            if not var_kw:
                reasons.append(f"takes **{p.name}; cupy takes no extra keywords")
            continue
        if theirs_p is not None and p.default is not None:
            if theirs_p.default is None:
                reasons.append(f"{p.name!r} may be omitted (default {p.default}); cupy "
                               "requires it")
            elif theirs_p.default != p.default and (
                    p.name, p.default, theirs_p.default) not in SAME_DEFAULTS:
                reasons.append(f"{p.name!r} defaults to {p.default}, cupy's to "
                               f"{theirs_p.default}")
    offered = {p.name for p in mine}
    count = sum(p.kind in (POS_ONLY, POS_OR_KW) for p in mine)
    has_var = any(p.kind in (VAR_POS, VAR_KW) for p in mine)
    for p in theirs:
        if p.default is not None or p.kind in (VAR_POS, VAR_KW) or has_var:
            continue
        filled = p in positional and positional.index(p) < count  # by the stand-in's position
        if p.name not in offered and not filled:
            reasons.append(f"cupy requires {p.name!r}, which the stand-in does not take")
    return reasons


def iter_xp_uses(src: Path) -> Iterator[str]:
    """Every `xp.NAME[.NAME...]` (or `self.xp....`) path a source tree uses."""
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            parts = [node.attr]
            base = node.value
            while isinstance(base, ast.Attribute) and base.attr != "xp":
                parts.append(base.attr)
                base = base.value
            rooted = (isinstance(base, ast.Name) and base.id == "xp") or (
                isinstance(base, ast.Attribute) and base.attr == "xp")
            if rooted:
                yield ".".join(reversed(parts))


@dataclass(frozen=True)
class Offer:
    """What a stand-in offers at a dotted path: its kind and, for a callable, the
    parameters it accepts (None: unknown)."""

    kind: str  # function, class, attribute, namespace
    params: tuple[Param, ...] | None = None


def effective_params(fn: Callable[..., Any], forwards_to: Any = None, *, method: bool = False
                     ) -> tuple[Param, ...] | None:
    """The parameters a stand-in callable accepts: its own, or, for a `(*args, **kwargs)`
    wrapper that forwards to numpy, the numpy callable's."""
    try:
        params = signature_params(inspect.signature(fn))
    except (TypeError, ValueError):
        return None
    if method:
        params = params[1:]
    if [p.kind for p in params] == [VAR_POS, VAR_KW] and forwards_to is not None:
        try:
            params = signature_params(inspect.signature(forwards_to))
        except (TypeError, ValueError):
            return None
        if method:
            params = params[1:]
    return params


def standin_offers(xp: Any, uses: Iterable[str], *, forwards_to: Any,
                   samples: Mapping[type, Callable[[], object]]) -> dict[str, Offer]:
    """Every dotted path a cupy stand-in module offers: its own public attributes, the
    paths `uses` names that resolve (a module `__getattr__` forwarding to numpy), and for
    each class its members, including what an instance forwards (`samples` builds one)."""
    offers: dict[str, Offer] = {}
    paths = [n for n in vars(xp) if not n.startswith("_")]
    for use in uses:
        paths.extend(".".join(use.split(".")[: i + 1]) for i in range(len(use.split("."))))
    for path in dict.fromkeys(paths):
        value: Any = xp
        try:
            for part in path.split("."):
                value = getattr(value, part)
        except AttributeError:
            continue
        if path in offers:
            continue
        if isinstance(value, type):
            offers[path] = Offer("class")
            offers.update(_class_offers(value, path, forwards_to, samples))
        elif isinstance(value, (types.ModuleType, types.SimpleNamespace)):
            offers[path] = Offer("namespace")
            for name in vars(value):
                if not name.startswith("_"):
                    paths.append(f"{path}.{name}")
        elif callable(value):
            name = getattr(value, "__name__", path.rsplit(".", 1)[-1])
            offers[path] = Offer("function", effective_params(
                value, getattr(forwards_to, name, None)))
        else:
            offers[path] = Offer("attribute")
    return offers


_IGNORED_DUNDERS = frozenset({"__getattr__", "__hash__", "__repr__", "__str__", "__init_subclass__",
                              "__subclasshook__", "__class_getitem__", "__new__", "__format__",
                              "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__",
                              "__sizeof__", "__dir__"})


def _class_offers(cls: type, path: str, forwards_to: Any,
                  samples: Mapping[type, Callable[[], object]]) -> dict[str, Offer]:
    offers = {}
    own = {n for k in cls.__mro__[:-1] for n in vars(k)}
    for name in sorted(own - _BOOKKEEPING - _IGNORED_DUNDERS):
        if name.startswith("_") and not name.startswith("__"):
            continue
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, (property, types.DynamicClassAttribute)) or not callable(raw):
            offers[f"{path}.{name}"] = Offer("attribute")
        elif name.startswith("__") and name != "__init__":
            offers[f"{path}.{name}"] = Offer("function")  # a protocol: called by syntax
        else:
            method = not isinstance(raw, staticmethod)
            offers[f"{path}.{name}"] = Offer("function", effective_params(
                getattr(cls, name), None, method=method))
    if "__init__" not in own:
        offers[f"{path}.__init__"] = Offer("function", ())
    make = samples.get(cls)
    if make is not None:  # what an instance forwards through __getattr__
        sample = make()
        ndarray = getattr(forwards_to, "ndarray", None)
        for name in dir(ndarray) if ndarray is not None else ():
            if name.startswith("_") or name in own:
                continue
            try:
                value = getattr(sample, name)
            except AttributeError:
                continue  # refused: not offered
            except Exception:  # offered, but not for this sample (numpy's mT of a 1-d array)
                value = None
            if callable(value):
                offers[f"{path}.{name}"] = Offer("function", effective_params(
                    getattr(ndarray, name), None, method=True))
            else:
                offers[f"{path}.{name}"] = Offer("attribute")
    return offers


def compare_offers(offers: Mapping[str, Offer], cupy: Mapping[str, CupyMember]) -> list[str]:
    """Every path the stand-in offers that cupy lacks, or offers as another kind, or
    whose calls the stand-in accepts but cupy's signature would refuse."""
    problems = []
    for path, offer in sorted(offers.items()):
        theirs = cupy.get(path)
        if theirs is None or not theirs.exists:
            problems.append(f"xp.{path}: the stand-in offers it, cupy has no {path}")
            continue
        kinds = {"function": {"function", "class"}, "class": {"class"},
                 "attribute": {"property", "value"}, "namespace": {"value", "module"}}
        if theirs.kind not in kinds[offer.kind]:
            problems.append(f"xp.{path}: a {offer.kind} in the stand-in, a {theirs.kind} in cupy")
            continue
        if offer.params is not None and theirs.params is not None:
            reasons = accepted_by(offer.params, theirs.params)
            if reasons:
                problems.append(f"xp.{path}: the stand-in accepts "
                                f"{Overload(offer.params)}, cupy {Overload(theirs.params)}: "
                                + "; ".join(reasons))
    return problems
