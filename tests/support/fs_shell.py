"""A small shell over the in-process `Filesystem`, for SEMANTICS.md's examples without a mount.

`FsShell.run` takes one command line of an example and answers the lines a real shell in the
mount root would print (stdout and stderr merged, ``LC_ALL=C``) for the commands and options the
examples use: ``cat`` (files, or ``<&N``), ``ls [-p]``, ``stat -c FORMAT``, ``readlink``,
``getfattr -n NAME`` / ``-d [-m PATTERN]``, ``exec N< FILE`` and ``exec N<&-``. Paths are walked
as the kernel walks them: one lookup (getattr) per component, symlinks followed where the
command follows them, ``ENOTDIR`` through a file.

Deliberately not here: anything that needs a kernel. `MOUNT_ONLY` names the commands whose
examples run only through a real mount, and why; any other command or option raises
`UnsupportedCommandError`, so a new example fails loudly instead of being skipped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import re
import shlex
import stat
from dataclasses import dataclass
from typing import Final

from ossfs.core.errors import OssfsError
from ossfs.fs.filesystem import Filesystem, Stat

_WRITE: Final = "a write: the kernel refuses it on the read-only mount before ossfs is asked"
MOUNT_ONLY: Final = {
    "touch": _WRITE,
    "rm": _WRITE,
    "mkdir": _WRITE,
    "mv": _WRITE,
    "ln": _WRITE,
    "setfattr": _WRITE,
    "python3": "mmap maps a kernel file descriptor's pages",
    "flock": "file locks are the kernel's, not ossfs's",
}
"""Commands an example needs a real mount for: command name -> why."""

SUPPORTED: Final = frozenset({"cat", "ls", "stat", "readlink", "getfattr", "exec"})
"""Commands `FsShell.run` answers."""
_READ_BYTES: Final = 128 << 10  # what cat asks for per read
_MAX_LINKS: Final = 40  # symlinks followed in one path walk before ELOOP, as Linux does
_STAT_KINDS: Final = {
    stat.S_IFREG: "regular file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symbolic link",
}


class UnsupportedCommandError(Exception):
    """A command or option the in-process shell does not know (teach it, or list it in
    `MOUNT_ONLY` with the reason it needs a kernel)."""


class _Failed(Exception):
    """A path walk failed with ``errno``."""

    def __init__(self, code: int) -> None:
        super().__init__(os.strerror(code))
        self.errno = code


@dataclass(slots=True)
class _OpenFd:
    fh: int
    position: int = 0


class FsShell:
    """One shell session in the mount root of ``fs``; not thread-safe."""

    def __init__(self, fs: Filesystem) -> None:
        self._fs = fs
        self._fds: dict[int, _OpenFd] = {}

    def close(self) -> None:
        """Close the descriptors the session left open (as the shell's exit does)."""
        for fd in list(self._fds):
            self._fs.release(self._fds.pop(fd).fh)

    def run(self, command: str) -> list[str]:
        """The output lines of ``command``; raises `UnsupportedCommandError`."""
        name, *args = shlex.split(command)
        commands = {
            "cat": self._cat,
            "ls": self._ls,
            "stat": self._stat,
            "readlink": self._readlink,
            "getfattr": self._getfattr,
            "exec": self._exec,
        }
        if name not in SUPPORTED:
            raise UnsupportedCommandError(command)
        out: list[str] = []
        commands[name](args, out)
        return "".join(out).splitlines()

    # -- commands -------------------------------------------------------------------------------
    def _cat(self, args: list[str], out: list[str]) -> None:
        for arg in args:
            redirect = re.fullmatch(r"<&(\d+)", arg)
            if redirect:
                fd = self._fds.get(int(redirect.group(1)))
                if fd is None:
                    raise UnsupportedCommandError(f"cat {arg}: no such descriptor")
                self._copy(fd, "-", out)
                continue
            try:
                fh = self._fs.open(self._resolve(arg, follow=True), os.O_RDONLY)
            except (OssfsError, _Failed) as exc:
                out.append(f"cat: {arg}: {os.strerror(exc.errno)}\n")
                continue
            try:
                self._copy(_OpenFd(fh), arg, out)
            finally:
                self._fs.release(fh)

    def _copy(self, fd: _OpenFd, name: str, out: list[str]) -> None:
        """cat's loop: read from the descriptor's position until a read answers nothing."""
        try:
            while data := self._fs.read(fd.fh, fd.position, _READ_BYTES):
                fd.position += len(data)
                out.append(bytes(data).decode())
        except OssfsError as exc:
            out.append(f"cat: {name}: {os.strerror(exc.errno)}\n")

    def _ls(self, args: list[str], out: list[str]) -> None:
        slash = "-p" in args
        operands = [a for a in args if a != "-p"] or ["."]
        if any(a.startswith("-") for a in operands):
            raise UnsupportedCommandError(f"ls {' '.join(args)}")
        files: list[str] = []
        dirs: list[str] = []
        for operand in operands:
            try:
                st = self._fs.getattr(self._resolve(operand, follow=True))
            except (OssfsError, _Failed) as exc:
                out.append(f"ls: cannot access '{operand}': {os.strerror(exc.errno)}\n")
                continue
            (dirs if stat.S_ISDIR(st.mode) else files).append(operand)
        out.extend(f"{name}\n" for name in sorted(files))
        for number, operand in enumerate(sorted(dirs)):
            if len(operands) > 1:
                out.append(("\n" if number or files else "") + f"{operand}:\n")
            for name, st in self._fs.readdir(self._resolve(operand, follow=True)):
                out.append(name + ("/" if slash and stat.S_ISDIR(st.mode) else "") + "\n")

    def _stat(self, args: list[str], out: list[str]) -> None:
        if len(args) < 3 or args[0] != "-c":
            raise UnsupportedCommandError(f"stat {' '.join(args)}")
        for path in args[2:]:
            try:
                st = self._fs.getattr(self._resolve(path, follow=False))
            except (OssfsError, _Failed) as exc:
                out.append(f"stat: cannot statx '{path}': {os.strerror(exc.errno)}\n")
                continue
            fields = re.split(r"%(.)", args[1])  # text, field, text, field, ..., text
            for index, text in enumerate(fields):
                out.append(_stat_field(text, st, path) if index % 2 else text)
            out.append("\n")

    def _readlink(self, args: list[str], out: list[str]) -> None:
        for path in args:
            # readlink without -v prints nothing for a failure.
            with contextlib.suppress(OssfsError, _Failed):
                out.append(self._fs.readlink(self._resolve(path, follow=False)) + "\n")

    def _getfattr(self, args: list[str], out: list[str]) -> None:
        opts: dict[str, str] = {}
        paths: list[str] = []
        words = iter(args)
        for word in words:
            if word in ("-n", "-m"):
                opts[word] = next(words)
            elif word == "-d":
                opts[word] = ""
            elif word.startswith("-"):
                raise UnsupportedCommandError(f"getfattr {word}")
            else:
                paths.append(word)
        for path in paths:
            try:
                target = self._resolve(path, follow=True)
                if "-n" in opts:
                    names = [opts["-n"]]
                else:
                    pattern = re.compile(opts.get("-m", r"^user\."))
                    names = [n for n in self._fs.listxattr(target) if pattern.search(n)]
                values = [(name, self._fs.getxattr(target, name)) for name in names]
            except (OssfsError, _Failed) as exc:
                code = exc.errno
                # getfattr names ENODATA (ENOATTR) this way, not with strerror's words.
                reason = "No such attribute" if code == errno.ENODATA else os.strerror(code)
                where = f"{path}: {opts['-n']}" if "-n" in opts else path
                out.append(f"{where}: {reason}\n")
                continue
            if values:
                out.append(f"# file: {path}\n")
                out.extend(f'{name}="{value.decode()}"\n' for name, value in values)
                out.append("\n")

    def _exec(self, args: list[str], out: list[str]) -> None:
        if len(args) == 1 and (close := re.fullmatch(r"(\d+)<&-", args[0])):
            fd = self._fds.pop(int(close.group(1)), None)
            if fd is not None:
                self._fs.release(fd.fh)
            return
        if len(args) == 2 and (opening := re.fullmatch(r"(\d+)<", args[0])):
            try:
                fh = self._fs.open(self._resolve(args[1], follow=True), os.O_RDONLY)
            except (OssfsError, _Failed) as exc:
                # bash's message names the script line: nothing an example could show here.
                raise UnsupportedCommandError(f"exec {' '.join(args)}: {exc}") from exc
            self._fds[int(opening.group(1))] = _OpenFd(fh)
            return
        raise UnsupportedCommandError(f"exec {' '.join(args)}")

    # -- paths ----------------------------------------------------------------------------------
    def _resolve(self, path: str, *, follow: bool) -> str:
        """The mount path ``path`` (relative to the root) names, walked as the kernel walks it:
        a lookup per component, symlinks followed (the last one only if ``follow``).
        Raises `_Failed` (ENOTDIR through a file, ELOOP) and what getattr raises."""
        pending = [part for part in path.split("/") if part not in ("", ".")]
        done = "/"
        links = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                done = posixpath.dirname(done)
                continue
            here = posixpath.join(done, part)
            mode = self._fs.getattr(here).mode
            if stat.S_ISLNK(mode) and (pending or follow):
                links += 1
                if links > _MAX_LINKS:
                    raise _Failed(errno.ELOOP)
                target = self._fs.readlink(here)  # relative to the link's directory, `done`
                if target.startswith("/"):
                    raise UnsupportedCommandError(f"{path}: an absolute symlink target")
                pending[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            if pending and not stat.S_ISDIR(mode):
                raise _Failed(errno.ENOTDIR)
            done = here
        return done


def _stat_field(field: str, st: Stat, path: str) -> str:
    """One ``stat -c`` conversion: %F kind, %s size, %a mode (octal), %h links, %i inode,
    %n name."""
    values = {
        "F": _STAT_KINDS[stat.S_IFMT(st.mode)],
        "s": str(st.size),
        "a": f"{stat.S_IMODE(st.mode):o}",
        "h": str(st.nlink),
        "i": str(st.ino),
        "n": path,
    }
    if field not in values:
        raise UnsupportedCommandError(f"stat -c %{field}")
    return values[field]
