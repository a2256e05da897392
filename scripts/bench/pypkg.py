"""The synthetic Python package of the ``import`` row: many small modules in subpackages, as an
environment or a code tree kept in a bucket has, written with their byte-code.

The package is deterministic (the same source for the same sizes) and checks itself: importing
it imports every module, and ``MODULES`` is the number of modules that ran. The byte-code is
written with unchecked hash-based validation (PEP 552), so the interpreter uses it whatever
mtime a filesystem reports for the source, and never tries to rewrite it on a read-only mount.
It deliberately has no C extensions (their loading is the dynamic linker's, not the import
system's).
"""

from __future__ import annotations

import py_compile
from pathlib import Path
from typing import Final

PACKAGE: Final = "benchpkg"


def _module_source(sub: int, mod: int) -> str:
    """About 2 KiB of code: constants, a class and functions, as a library module has."""
    lines = [f'"""Module {mod} of subpackage {sub} of the benchmark package."""', ""]
    lines += [f"TABLE_{i} = {tuple(range(i, i + 8))!r}" for i in range(16)]
    lines += ["", "", f"class Thing{mod}:", '    """A class with a few methods."""', ""]
    for i in range(6):
        lines += [f"    def method_{i}(self, x: int) -> int:"]
        lines += [f"        return x * {i} + {mod}", ""]
    for i in range(8):
        lines += ["", f"def function_{i}(a: int, b: int = {i}) -> int:"]
        lines += [f"    return sum(TABLE_{i}) + a * b + {sub}", ""]
    return "\n".join(lines) + "\n"


def package_sources(subpackages: int, modules: int) -> dict[str, str]:
    """Relative path -> source text of the package (``benchpkg/__init__.py`` and the rest)."""
    out: dict[str, str] = {}
    subs = [f"sub{s:02d}" for s in range(subpackages)]
    for s, sub in enumerate(subs):
        names = [f"mod{m:02d}" for m in range(modules)]
        for m, name in enumerate(names):
            out[f"{PACKAGE}/{sub}/{name}.py"] = _module_source(s, m)
        out[f"{PACKAGE}/{sub}/__init__.py"] = (
            f"from . import {', '.join(names)}\n\nMODULES = {len(names)}\n"
            if names
            else "MODULES = 0\n"
        )
    body = f"from . import {', '.join(subs)}\n\n" if subs else ""
    total = " + ".join(f"{sub}.MODULES" for sub in subs) or "0"
    out[f"{PACKAGE}/__init__.py"] = f"{body}MODULES = {total}\n"
    return out


def write_package(root: Path, subpackages: int, modules: int) -> list[Path]:
    """Write the package's sources and their byte-code under ``root``; every file written."""
    written = []
    for rel, text in package_sources(subpackages, modules).items():
        source = root / rel
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(text)
        compiled = py_compile.compile(  # the interpreter's own cache path (__pycache__)
            str(source),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        if compiled is None:  # only with doraise=False
            raise RuntimeError(f"{source} did not compile")
        written += [source, Path(compiled)]
    return written
