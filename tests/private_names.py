"""The scanner of tests/test_private_names.py: private names of dependencies in source text.

The scan reads the source (AST), without running it. "Private" is a name with a leading
underscore that is not a dunder. It finds:

- imports of private modules or names (``import oss2._x``, ``from oss2.xml_utils import _y``);
- private attributes of objects that come from a dependency: imported names and their
  attributes, what calling them returns, parameters, variables and ``self`` attributes annotated
  with their types, what functions annotated to return their types return (across modules),
  loop and ``with`` targets over them; ``getattr``/``setattr``/``hasattr``/``delattr`` with a
  private name; name-mangled strings (``"_LRUCache__order"``);
- in a class derived from a dependency's class: a private method that overrides one of the
  base's, ``super()._x``, and ``self._x`` that the class itself does not define;
- assignments to attributes of a dependency's modules or classes (monkeypatching), public or
  not.

It is flow-insensitive (a name tainted anywhere in a function is tainted in all of it) and errs
towards finding (tests/test_private_names.py plants each kind in a sample and checks that
clean code stays clean).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import ossfs.fuse  # noqa: F401 (libfuse 3 is asked for before _resolve imports mfusepy)

ROOT: Final = Path(__file__).resolve().parent.parent
ALWAYS_WATCHED: Final = frozenset({"oss2", "cachetools", "mfusepy", "requests", "urllib3"})
_MANGLED: Final = re.compile(r"^_[A-Za-z][A-Za-z0-9]*__[A-Za-z_]\w*$")
_REFLECTION: Final = frozenset({"getattr", "setattr", "hasattr", "delattr"})

Taint = frozenset[str]
"""A tainted value: the private names it may use anyway (those its own ossfs class defines)."""
_PLAIN: Final[Taint] = frozenset()


def watched_modules() -> frozenset[str]:
    """The top-level import names of pyproject.toml's runtime dependencies, and
    `ALWAYS_WATCHED`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {canonicalize_name(Requirement(text).name) for text in project["dependencies"]}
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if module.isidentifier() and any(canonicalize_name(d) in names for d in dists)
    }
    return frozenset(modules | ALWAYS_WATCHED)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


@dataclass
class _Module:
    """One file: its imports of watched modules (local name -> dotted name) and what was
    found in it."""

    path: str
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _read_imports(module: _Module, watched: frozenset[str]) -> None:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] not in watched:
                    continue
                if any(_private(p) for p in parts[1:]):
                    module.findings.append(
                        Finding(module.path, node.lineno, f"imports private {alias.name}")
                    )
                if alias.asname:
                    module.imports[alias.asname] = alias.name
                else:
                    module.imports[parts[0]] = parts[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] not in watched:
                continue
            if any(_private(p) for p in parts[1:]):
                module.findings.append(
                    Finding(module.path, node.lineno, f"imports from private {node.module}")
                )
            for alias in node.names:
                if _private(alias.name):
                    module.findings.append(
                        Finding(
                            module.path,
                            node.lineno,
                            f"imports private {alias.name} from {node.module}",
                        )
                    )
                module.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"


def _annotation_names(node: ast.expr | None) -> Iterator[str]:
    """The names an annotation mentions (string annotations parsed)."""
    if node is None:
        return
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            yield sub.id
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            try:
                parsed = ast.parse(sub.value, mode="eval")
            except SyntaxError:
                continue
            yield from _annotation_names(parsed.body)


def _resolve(dotted: str) -> object | None:
    """The object a dotted name of a watched module names, or None if it cannot be imported."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return None
            obj = getattr(obj, name)
        return obj
    return None


def _defined_names(cls: ast.ClassDef) -> set[str]:
    """Names a class defines: methods, class attributes, ``self.x = ...`` in its methods."""
    names: set[str] = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    for sub in ast.walk(cls):
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.ctx, ast.Store)
            and isinstance(sub.value, ast.Name)
            and sub.value.id in ("self", "cls")
        ):
            names.add(sub.attr)
    return names


@dataclass
class _Knowledge:
    """What pass one learns across all files."""

    watched: frozenset[str]
    returning: set[str] = field(default_factory=set)  # functions returning watched types
    derived: dict[str, set[str]] = field(default_factory=dict)  # class -> names it defines


class _Scope:
    """The tainted names and ``self`` attributes of one function (or the module)."""

    def __init__(self, parent: _Scope | None = None, self_attrs: dict[str, Taint] | None = None):
        self.names: dict[str, Taint] = dict(parent.names) if parent else {}
        self.self_attrs = self_attrs if self_attrs is not None else {}


class _FileScan:
    def __init__(self, module: _Module, know: _Knowledge) -> None:
        self.m = module
        self.know = know

    # -- taint ------------------------------------------------------------------------------------
    def _watched_type(self, annotation: ast.expr | None) -> Taint | None:
        for name in _annotation_names(annotation):
            if name in self.m.imports:
                return _PLAIN
            if name in self.know.derived:
                return frozenset(self.know.derived[name])
        return None

    def taint(self, node: ast.expr, scope: _Scope) -> Taint | None:
        if isinstance(node, ast.Name):
            if node.id in self.m.imports:
                return _PLAIN
            return scope.names.get(node.id)
        if isinstance(node, ast.Attribute):
            path = _dotted(node)
            if path == f"self.{node.attr}" and node.attr in scope.self_attrs:
                return scope.self_attrs[node.attr]
            base = self.taint(node.value, scope)
            if base is None or node.attr in base:  # an ossfs subclass's own attribute
                return None
            return _PLAIN
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "super":
                return _PLAIN if scope.names.get("self") is not None else None
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if isinstance(func, ast.Name) and func.id in self.know.derived:
                return frozenset(self.know.derived[func.id])
            if name in self.know.returning:
                return _PLAIN
            return _PLAIN if self.taint(func, scope) is not None else None
        if isinstance(node, ast.Subscript | ast.Starred | ast.Await):
            return self.taint(node.value, scope)
        if isinstance(node, ast.IfExp):
            return self.taint(node.body, scope) or self.taint(node.orelse, scope)
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                found = self.taint(value, scope)
                if found is not None:
                    return found
        if isinstance(node, ast.NamedExpr):
            return self.taint(node.value, scope)
        return None

    def _bind(self, target: ast.expr, taint: Taint, scope: _Scope) -> bool:
        """Mark ``target`` tainted; True if that is new."""
        if isinstance(target, ast.Name):
            if target.id in scope.names:
                return False
            scope.names[target.id] = taint
            return True
        if isinstance(target, ast.Tuple | ast.List):
            grew = False
            for elt in target.elts:
                grew |= self._bind(elt, _PLAIN, scope)
            return grew
        if isinstance(target, ast.Starred):
            return self._bind(target.value, _PLAIN, scope)
        path = _dotted(target) if isinstance(target, ast.Attribute) else None
        if path is not None and path.startswith("self.") and path.count(".") == 1:
            attr = path.partition(".")[2]
            if attr in scope.self_attrs:
                return False
            scope.self_attrs[attr] = taint
            return True
        return False

    def _spread(self, body: Iterable[ast.AST], scope: _Scope) -> bool:
        """One pass of taint over ``body`` (not into nested functions); True if it grew."""
        grew = False
        for node in body:
            for sub in _walk_here(node):
                if isinstance(sub, ast.Assign | ast.AnnAssign | ast.NamedExpr):
                    value = sub.value
                    taint = self.taint(value, scope) if value is not None else None
                    if isinstance(sub, ast.AnnAssign):
                        taint = taint if taint is not None else self._watched_type(sub.annotation)
                    targets: list[ast.expr] = (
                        sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                    )
                    if taint is not None:
                        for target in targets:
                            grew |= self._bind(target, taint, scope)
                elif isinstance(sub, ast.For | ast.AsyncFor | ast.comprehension):
                    if self.taint(sub.iter, scope) is not None:
                        grew |= self._bind(sub.target, _PLAIN, scope)
                elif (
                    isinstance(sub, ast.withitem)
                    and sub.optional_vars is not None
                    and self.taint(sub.context_expr, scope) is not None
                ):
                    grew |= self._bind(sub.optional_vars, _PLAIN, scope)
        return grew

    # -- findings ---------------------------------------------------------------------------------
    def _find(self, node: ast.AST, what: str) -> None:
        self.m.findings.append(Finding(self.m.path, getattr(node, "lineno", 0), what))

    def _imported_chain(self, node: ast.expr) -> bool:
        """``node`` is an imported watched name or a chain of attributes of one."""
        path = _dotted(node)
        return path is not None and path.split(".")[0] in self.m.imports

    def _check(self, body: Iterable[ast.AST], scope: _Scope) -> None:
        for node in body:
            for sub in _walk_here(node):
                if isinstance(sub, ast.Attribute):
                    if isinstance(sub.ctx, ast.Store) and self._imported_chain(sub.value):
                        self._find(sub, f"monkeypatches {_dotted(sub)}")
                    elif _private(sub.attr):
                        base = self.taint(sub.value, scope)
                        if base is not None and sub.attr not in base:
                            self._find(sub, f"private {sub.attr} of a dependency's object")
                elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name):
                    self._check_reflection(sub, scope)
                elif (
                    isinstance(sub, ast.Constant)
                    and isinstance(sub.value, str)
                    and _MANGLED.match(sub.value)
                ):
                    self._find(sub, f"name-mangled private {sub.value}")

    def _check_reflection(self, call: ast.Call, scope: _Scope) -> None:
        func = call.func
        assert isinstance(func, ast.Name)
        if func.id not in _REFLECTION or len(call.args) < 2:
            return
        target, name = call.args[0], call.args[1]
        if func.id in ("setattr", "delattr") and self._imported_chain(target):
            self._find(call, f"monkeypatches {_dotted(target)} through {func.id}")
            return
        if isinstance(name, ast.Constant) and isinstance(name.value, str) and _private(name.value):
            base = self.taint(target, scope)
            if base is not None and name.value not in base:
                self._find(call, f"private {name.value} of a dependency's object via {func.id}")

    # -- structure --------------------------------------------------------------------------------
    def scan(self) -> None:
        module_scope = _Scope()
        top = list(self.m.tree.body)
        for _ in range(4):
            if not self._spread(top, module_scope):
                break
        self._check(top, module_scope)
        self._scan_defs(self.m.tree.body, module_scope)

    def _scan_defs(self, body: Iterable[ast.stmt], scope: _Scope) -> None:
        for node in body:
            for sub in _walk_here(node, include_self=True):
                if isinstance(sub, ast.ClassDef):
                    self._scan_class(sub, scope)
                elif isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                    self._scan_function(sub, scope)

    def _watched_bases(self, cls: ast.ClassDef) -> list[str]:
        bases = []
        for written in cls.bases:
            base = written
            while isinstance(base, ast.Subscript):  # Generic[...] bases
                base = base.value
            path = _dotted(base)
            if path is not None and path.split(".")[0] in self.m.imports:
                head, _, rest = path.partition(".")
                bases.append(self.m.imports[head] + ("." + rest if rest else ""))
            elif path in self.know.derived:
                bases.append(path)
        return bases

    def _scan_class(self, cls: ast.ClassDef, scope: _Scope) -> None:
        bases = self._watched_bases(cls)
        own = _defined_names(cls)
        # A base that is an ossfs class derived from a dependency's cannot be looked into:
        # None, so that any private method it defines counts as an override.
        resolved = [_resolve(b) if "." in b else None for b in bases]
        self_attrs: dict[str, Taint] = {}
        methods = [n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for method in methods:
            overrides = any(obj is None or hasattr(obj, method.name) for obj in resolved)
            if bases and _private(method.name) and overrides:
                self._find(method, f"overrides private {method.name} of {', '.join(bases)}")
        scopes = [self._method_scope(m, scope, self_attrs, own if bases else None) for m in methods]
        for _ in range(4):
            grew = False
            for method, method_scope in zip(methods, scopes, strict=True):
                grew |= self._spread(method.body, method_scope)
            if not grew:
                break
        for method, method_scope in zip(methods, scopes, strict=True):
            self._check(method.body, method_scope)
            self._scan_defs(method.body, method_scope)
        others = [n for n in cls.body if n not in methods]
        self._check(others, scope)
        self._scan_defs(others, scope)

    def _method_scope(
        self,
        func: ast.FunctionDef | ast.AsyncFunctionDef,
        parent: _Scope,
        self_attrs: dict[str, Taint],
        own: set[str] | None,
    ) -> _Scope:
        scope = _Scope(parent, self_attrs)
        self._bind_params(func.args, scope)
        params = func.args.posonlyargs + func.args.args
        if own is not None and params:
            # In a class derived from a dependency's: its own names are its own business.
            scope.names[params[0].arg] = frozenset(own)
        return scope

    def _bind_params(self, args: ast.arguments, scope: _Scope) -> None:
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is None:
                continue
            scope.names.pop(arg.arg, None)  # a parameter shadows the enclosing name
            taint = self._watched_type(arg.annotation)
            if taint is not None:
                scope.names[arg.arg] = taint

    def _scan_function(
        self, func: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, parent: _Scope
    ) -> None:
        scope = _Scope(parent, parent.self_attrs)
        self._bind_params(func.args, scope)
        body: list[ast.AST] = list(func.body) if isinstance(func.body, list) else [func.body]
        for _round in range(4):
            if not self._spread(body, scope):
                break
        self._check(body, scope)
        self._scan_defs([n for n in body if isinstance(n, ast.stmt)], scope)


def _walk_here(node: ast.AST, *, include_self: bool = False) -> Iterator[ast.AST]:
    """``node`` and what it contains, but not the bodies of functions, lambdas or classes
    defined in it (their own scopes); those definitions themselves are yielded."""
    if include_self:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            return
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        # The definition's decorators, defaults and annotations belong to this scope.
        for part in (*node.decorator_list, *getattr(node, "bases", ())):
            yield from _walk_here(part, include_self=True)
        yield node
        return
    else:
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _walk_here(child, include_self=True)


def scan(sources: dict[str, str], watched: frozenset[str]) -> list[Finding]:
    """Every finding in ``sources`` (path -> source text)."""
    modules = [_Module(path, ast.parse(text, path)) for path, text in sources.items()]
    know = _Knowledge(watched)
    for module in modules:
        _read_imports(module, watched)
    # Classes derived from watched classes, and functions returning watched types, across
    # files (derived classes of derived classes: a few rounds).
    for _ in range(3):
        for module in modules:
            scan_file = _FileScan(module, know)
            for node in ast.walk(module.tree):
                if isinstance(node, ast.ClassDef) and scan_file._watched_bases(node):
                    know.derived[node.name] = _defined_names(node)
                elif (
                    isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    and scan_file._watched_type(node.returns) is not None
                ):
                    know.returning.add(node.name)
    findings: list[Finding] = []
    for module in modules:
        _FileScan(module, know).scan()
        findings.extend(module.findings)
    return sorted(set(findings), key=lambda f: (f.path, f.line, f.what))
