"""SEMANTICS.md's examples, run: every ```` ```console test ```` block against a real mount, and
against the in-process filesystem unless it needs a kernel (`tests.support.fs_shell.MOUNT_ONLY`
says why).

A block is a shell session in the mount root. ``# mount: OPTIONS`` (first line, optional) gives
``ossfs mount`` options; ``# oss: ACTION ...`` changes the bucket on the local OSS server at that
point; ``$ COMMAND`` runs in one persistent bash (so ``exec 3< FILE`` keeps a file open across
lines) with stderr merged into stdout and ``LC_ALL=C``; the lines after it are its exact output
(trailing blank lines ignored). Actions:

- ``put KEY TEXT [--archive] [--type CONTENT-TYPE] [--meta NAME=VALUE]``: object TEXT + newline;
- ``marker KEY/``: an empty directory marker; ``symlink KEY TARGET``; ``delete KEY``;
- ``fail KEY``: every request for KEY answers 500 from now on.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shlex
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from ossfs.app import wiring
from ossfs.app.mount_config import MountConfig
from ossfs.app.umount import is_mounted
from ossfs.core.sizes import parse_ttl
from ossfs.core.url import OssLocation
from ossfs.emulator import EmulatorServer
from ossfs.store.credentials import Credentials
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.support.fs_shell import MOUNT_ONLY, SUPPORTED, FsShell
from tests.support.mounts import run_ossfs
from tests.support.waiting import wait_until

DOC: Final = Path(__file__).resolve().parent.parent / "SEMANTICS.md"
_BLOCK_RE: Final = re.compile(r"^```console test\n(.*?)^```$", re.MULTILINE | re.DOTALL)

README: Final = DOC.parent / "README.md"


@dataclass(frozen=True, slots=True)
class Step:
    """One ``# oss:`` action (``command`` empty) or one ``$`` command and its expected output."""

    action: tuple[str, ...]
    command: str
    expected: tuple[str, ...]

    def expected_text(self) -> str:
        return "\n".join(self.expected)


@dataclass(frozen=True, slots=True)
class Example:
    name: str
    mount_options: tuple[str, ...]
    steps: tuple[Step, ...]


def parse_examples(text: str) -> list[Example]:
    examples = []
    for match in _BLOCK_RE.finditer(text):
        line_no = text.count("\n", 0, match.start()) + 1
        lines = match.group(1).splitlines()
        options: tuple[str, ...] = ()
        if lines and lines[0].startswith("# mount:"):
            options = tuple(shlex.split(lines.pop(0).removeprefix("# mount:")))
        steps: list[Step] = []
        for line in lines:
            if line.startswith("# oss:"):
                steps.append(Step(tuple(shlex.split(line.removeprefix("# oss:"))), "", ()))
            elif line.startswith("$ "):
                steps.append(Step((), line[2:], ()))
            else:
                assert steps and steps[-1].command, f"SEMANTICS.md:{line_no}: output of what?"
                last = steps[-1]
                steps[-1] = Step((), last.command, (*last.expected, line))
        examples.append(Example(f"line{line_no}", options, tuple(steps)))
    return examples


EXAMPLES: Final = parse_examples(DOC.read_text())


def mount_only_reason(example: Example) -> str | None:
    """Why ``example`` runs only through a real mount (None: it also runs in process)."""
    for step in example.steps:
        if step.command:
            reason = MOUNT_ONLY.get(shlex.split(step.command)[0])
            if reason is not None:
                return f"$ {step.command}: {reason}"
    return None


IN_PROCESS: Final = [e for e in EXAMPLES if mount_only_reason(e) is None]


def test_semantics_doc_has_examples_of_every_errno_in_its_table() -> None:
    text = DOC.read_text()
    shown = "\n".join(s.expected_text() for e in EXAMPLES for s in e.steps if s.command)
    for message in (
        "No such file or directory",
        "Permission denied",
        "Stale file handle",
        "Read-only file system",
        "Input/output error",
        "No such attribute",
        "Operation not supported",
        "Is a directory",
        "Not a directory",
    ):
        assert message in shown, f"no example shows {message!r}"
    for name in (
        "ENOENT",
        "EACCES",
        "ESTALE",
        "EROFS",
        "EIO",
        "ENODATA",
        "ENOTSUP",
        "EISDIR",
        "ENOTDIR",
    ):
        assert f"| `{name}` |" in text, f"the errno table lacks {name}"


def _errno_rows(text: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`E[A-Z]+`", cells[0]):
            rows[cells[0].strip("`")] = (cells[1], re.sub(r" \(section 4[^)]*\)", "", cells[2]))
    return rows


def test_readme_errno_table_matches_semantics() -> None:
    semantics = _errno_rows(DOC.read_text())
    assert len(semantics) == 9
    assert _errno_rows(README.read_text()) == semantics
    for name, (message, _) in semantics.items():
        assert os.strerror(getattr(errno, name)) == message, name


def _apply(emulator: EmulatorServer, action: tuple[str, ...]) -> None:
    verb, *args = action
    if verb == "put":
        parser = argparse.ArgumentParser(prog="put", exit_on_error=False)
        parser.add_argument("key")
        parser.add_argument("text")
        parser.add_argument("--archive", action="store_true")
        parser.add_argument("--type", default=None)
        parser.add_argument("--meta", action="append", default=[])
        opts = parser.parse_args(args)
        emulator.put_object(
            BUCKET,
            opts.key,
            (opts.text + "\n").encode(),
            storage_class="Archive" if opts.archive else "Standard",
            content_type=opts.type,
            user_meta=dict(m.split("=", 1) for m in opts.meta),
        )
    elif verb == "marker":
        emulator.put_object(BUCKET, args[0], b"")
    elif verb == "symlink":
        emulator.put_symlink(BUCKET, args[0], args[1])
    elif verb == "delete":
        emulator.delete_object(BUCKET, args[0])
    elif verb == "fail":
        emulator.faults.update(error_rate=1.0, key_prefix=args[0])
    else:
        raise AssertionError(f"unknown action {verb!r}")


class Shell:
    """One bash in the mount root; `run` returns a command's merged output lines."""

    def __init__(self, cwd: Path) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": "/"}
        self._proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, command: str) -> list[str]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        marker = f"--end-{uuid.uuid4().hex}--"
        self._proc.stdin.write(f"{command} 2>&1\necho; echo {marker}\n")
        self._proc.stdin.flush()
        lines: list[str] = []
        while (line := self._proc.stdout.readline()) and line.rstrip("\n") != marker:
            lines.append(line.rstrip("\n"))
        # The echo before the marker ends output that lacks a final newline.
        if lines and lines[-1] == "":
            lines.pop()
        return lines

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


def _strip_blank_tail(lines: list[str] | tuple[str, ...]) -> list[str]:
    out = list(lines)
    while out and not out[-1].strip():
        out.pop()
    return out


@pytest.mark.mount
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_semantics_example(emulator: EmulatorServer, tmp_path: Path, example: Example) -> None:
    steps = list(example.steps)
    while steps and not steps[0].command:  # the bucket as the example starts
        _apply(emulator, steps.pop(0).action)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounted = run_ossfs(
        "mount", f"oss://{BUCKET}", str(mp), "--endpoint", emulator.endpoint, *example.mount_options
    )
    assert mounted.returncode == 0, mounted.stderr
    shell = Shell(mp)
    try:
        for step in steps:
            if not step.command:
                _apply(emulator, step.action)
                continue
            got = _strip_blank_tail(shell.run(step.command))
            assert got == _strip_blank_tail(step.expected), f"$ {step.command}"
    finally:
        shell.close()
        # The shell may still be leaving the mount: umount is tried until it is not busy.
        wait_until(
            lambda: not is_mounted(mp) or run_ossfs("umount", str(mp)).returncode == 0,
            30,
            "the unmount",
            step_s=0.2,
        )
        assert not is_mounted(mp)


def test_semantics_examples_run_in_process_unless_they_need_a_kernel() -> None:
    """Every command of an example runs in process, or its example says why it cannot."""
    for example in EXAMPLES:
        if mount_only_reason(example) is not None:
            continue
        for step in example.steps:
            if step.command:
                assert shlex.split(step.command)[0] in SUPPORTED, (
                    f"{example.name}: $ {step.command}"
                )
    assert len(IN_PROCESS) >= len(EXAMPLES) // 2, "most examples run without a kernel"


def in_process_config(
    emulator: EmulatorServer, mountpoint: Path, options: tuple[str, ...]
) -> MountConfig:
    """The mount configuration an example's ``# mount:`` options give (only those the
    in-process runner knows; others fail the test). Nothing is mounted on ``mountpoint``."""
    parser = argparse.ArgumentParser(prog="mount", exit_on_error=False)
    parser.add_argument("--metadata-ttl", default="60")
    opts = parser.parse_args(options)
    return MountConfig(
        location=OssLocation(BUCKET, ""),
        mountpoint=mountpoint,
        endpoint=emulator.endpoint,
        credentials=Credentials(ACCESS_KEY_ID, ACCESS_KEY_SECRET),
        metadata_ttl_s=parse_ttl(opts.metadata_ttl, what="--metadata-ttl"),
    )


@pytest.mark.parametrize("example", IN_PROCESS, ids=[e.name for e in IN_PROCESS])
def test_semantics_example_in_process(
    emulator: EmulatorServer, tmp_path: Path, example: Example
) -> None:
    """The example's commands against the filesystem a mount would serve, built as the daemon
    builds it (store, buffers, cache, read-ahead), with no kernel in between."""
    steps = list(example.steps)
    while steps and not steps[0].command:
        _apply(emulator, steps.pop(0).action)
    config = in_process_config(emulator, tmp_path, example.mount_options)
    buffers = wiring.block_buffers(config)
    with wiring.build_store(config, buffers) as store:
        fs, _, _ = wiring.build_filesystem(config, store, buffers)
        shell = FsShell(fs)
        try:
            for step in steps:
                if not step.command:
                    _apply(emulator, step.action)
                    continue
                got = _strip_blank_tail(shell.run(step.command))
                assert got == _strip_blank_tail(step.expected), f"$ {step.command}"
        finally:
            shell.close()
            fs.close()
        assert fs.open_handles() == 0
