"""fstab and ``mount -t fuse.ossfs``: the helper's form ``ossfs SOURCE MOUNTPOINT -o OPTIONS``.

util-linux's mount runs ``mount.fuse3``, which runs ``/bin/sh -c 'ossfs SOURCE MOUNTPOINT -o
OPTS'`` with PATH reset to ``/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`` and
HOME to root's. ``scripts/setup.sh`` run as root puts this checkout's ``ossfs`` first on that PATH
(``scripts/install_mount_helper.sh``: /usr/local/sbin/ossfs); the real-mount tests use what it
installed, and need root.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from ossfs.app.cli import build_parser, legacy_mount_argv, main
from ossfs.app.umount import is_mounted
from ossfs.core.errors import UsageError
from ossfs.emulator import EmulatorServer
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.support.mounts import wait_daemon_gone

HELPER_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ROOT: Final = Path(__file__).resolve().parent.parent
DOCS: Final = ROOT / "docs"
INSTALLER: Final = ROOT / "scripts" / "install_mount_helper.sh"
OURS: Final = Path(sys.executable).parent / "ossfs"
"""This checkout's ``ossfs`` (the package's console script, next to the venv's python)."""


# -- the argument translation ----------------------------------------------------------------------


def test_legacy_argv_maps_ossfs_options_drops_mount_options_passes_fuse_options() -> None:
    argv = [
        "oss://b-1/some/prefix",
        "/mnt/x",
        "-o",
        "rw,nodev,nosuid,endpoint=http://127.0.0.1:9,allow_other,_netdev,nofail,noauto,"
        "metadata_ttl=5,passwd_file=/etc/pw,cache_size=64MiB,kernel_cache,x-systemd.automount,"
        "uid=7,file_mode=440,defaults,ro,suid,blksize=4096",
    ]
    assert legacy_mount_argv(argv) == [
        "mount",
        "oss://b-1/some/prefix",
        "/mnt/x",
        "--endpoint",
        "http://127.0.0.1:9",
        "--allow-other",
        "--metadata-ttl",
        "5",
        "--passwd-file",
        "/etc/pw",
        "--cache-size",
        "64MiB",
        "--uid",
        "7",
        "--file-mode",
        "440",
        "-o",
        "nodev,nosuid,kernel_cache,suid,blksize=4096",
    ]


def test_legacy_argv_accepts_ossfs_1x_source_and_attached_options() -> None:
    argv = ["b-1:/logs/2025", "/mnt/x", "-ourl=http://e", "-opublic_bucket=1", "-f"]
    assert legacy_mount_argv(argv) == [
        "mount",
        "oss://b-1/logs/2025",
        "/mnt/x",
        "--source-name",
        "b-1:/logs/2025",
        "--endpoint",
        "http://e",
        "--anonymous",
        "--foreground",
    ]
    assert legacy_mount_argv(["b-1", "/m", "--region", "cn-hangzhou"])[1:] == [
        "oss://b-1",
        "/m",
        "--source-name",
        "b-1",
        "--region",
        "cn-hangzhou",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["oss://b-1"], "expected SOURCE MOUNTPOINT"),
        (["oss://b-1", "/m", "-o", "endpoint"], "option endpoint needs a value: -o endpoint=VALUE"),
        (["oss://b-1", "/m", "-o", "allow_other=1"], "option allow_other takes no value"),
        (["oss://b-1", "/m", "-o"], "-o needs a value"),
        (["oss://b-1", "/m", "extra"], "unexpected argument 'extra'"),
        (["mout", "oss://b-1", "/m"], "unknown command 'mout': use one of mount, umount"),
        (["oss://b-1", "/m", "-o", "cache_sise=1G"], "unknown option cache_sise: did you mean"),
        (["oss://b-1", "/m", "-o", "endpont=http://e"], "did you mean endpoint[?]"),
    ],
)
def test_legacy_argv_errors_say_what_to_do(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        legacy_mount_argv(argv)


def test_main_legacy_form_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["oss://b-1", "/m", "-o", "metadata_ttl"]) == 2
    err = capsys.readouterr().err
    assert err == "ossfs: error: option metadata_ttl needs a value: -o metadata_ttl=VALUE\n"
    assert main(["not a bucket!", "/nonexistent-mountpoint"]) == 2
    assert "invalid bucket name" in capsys.readouterr().err


# -- the documented examples parse ---------------------------------------------------------------


def test_docs_fstab_examples_are_valid_ossfs_command_lines() -> None:
    text = (DOCS / "fstab.md").read_text()
    commands: list[list[str]] = []
    for line in text.splitlines():
        fields = line.split()
        if line.startswith("oss://") and len(fields) == 6:  # an fstab line
            assert fields[2] == "fuse.ossfs"
            commands.append([fields[0], fields[1], "-o", fields[3]])
        elif line.startswith("mount -t fuse.ossfs "):
            commands.append(shlex.split(line)[3:])
    assert len(commands) == 2
    for argv in commands:
        args = build_parser().parse_args(legacy_mount_argv(argv))
        assert args.command == "mount" and args.location == "oss://my-bucket/data"
        assert args.region == "cn-hangzhou" and args.allow_other and args.metadata_ttl == "300"


def test_docs_systemd_unit_execstart_is_a_valid_foreground_mount() -> None:
    lines = (DOCS / "ossfs.service").read_text().splitlines()
    (exec_start,) = [ln for ln in lines if ln.startswith("ExecStart=")]
    program, *argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert program == "/usr/local/sbin/ossfs"  # where setup puts it (install_mount_helper.sh)
    args = build_parser().parse_args(argv)
    assert args.command == "mount" and args.foreground and args.passwd_file is not None
    assert "Type=simple" in lines and "WantedBy=multi-user.target" in lines


# -- through the real mount command ----------------------------------------------------------------


def _install(helper_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if helper_dir is not None:
        env["OSSFS_HELPER_DIR"] = str(helper_dir)
    return subprocess.run(
        ["bash", str(INSTALLER)], capture_output=True, text=True, timeout=30, env=env, check=False
    )


def test_install_mount_helper_links_once_replaces_a_stale_link_and_leaves_a_file_alone(
    tmp_path: Path,
) -> None:
    assert OURS.exists(), "the package's console script (pip install -e .) is missing"
    helper_dir = tmp_path / "sbin"  # made by the installer
    link = helper_dir / "ossfs"

    first = _install(helper_dir)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"setup: installed {link} -> ") and not first.stderr
    assert link.is_symlink() and link.resolve() == OURS.resolve()

    again = _install(helper_dir)  # setup run again: nothing to do, and it says so
    assert again.returncode == 0, again.stderr
    assert again.stdout.endswith("(already installed)\n") and len(again.stdout.splitlines()) == 1
    assert link.resolve() == OURS.resolve()

    link.unlink()
    link.symlink_to(tmp_path / "moved-checkout" / ".venv" / "bin" / "ossfs")  # dangling
    stale = _install(helper_dir)
    assert stale.returncode == 0 and stale.stdout.startswith("setup: installed"), stale.stderr
    assert link.resolve() == OURS.resolve()
    assert sorted(p.name for p in helper_dir.iterdir()) == ["ossfs"]  # no leftover temporary

    link.unlink()
    link.write_text("#!/bin/sh\n# someone else's ossfs\n")
    other = _install(helper_dir)
    assert other.returncode == 0 and not other.stdout
    assert f"{link} is not a symlink, so it was left alone" in other.stderr
    assert link.read_text() == "#!/bin/sh\n# someone else's ossfs\n"


@pytest.fixture
def helper_ossfs() -> None:
    """mount.fuse3 finds this checkout's ``ossfs``, installed as `scripts/setup.sh` does as root.

    CI's setup has installed it. Where it is not this checkout's (setup ran as another user, or
    another checkout's setup ran since) the fixture runs the installer setup runs, never a link of
    its own, and leaves it as setup would.
    """
    if os.geteuid() != 0:
        pytest.skip("mount -t fuse.ossfs needs root (CI runs the tests as root)")
    if shutil.which("mount.fuse3", path=HELPER_PATH) is None:
        pytest.skip("FUSE's mount.fuse3 is missing (fuse3 is installed by scripts/setup.sh)")
    found = shutil.which("ossfs", path=HELPER_PATH)
    if found is None or Path(found).resolve() != OURS.resolve():
        installed = _install()
        assert installed.returncode == 0, installed.stderr
        found = shutil.which("ossfs", path=HELPER_PATH)
    assert found == "/usr/local/sbin/ossfs", found
    assert Path(found).resolve() == OURS.resolve(), f"{found} is not this checkout's ossfs"


def _no_oss_env() -> dict[str, str]:
    """What a boot-time mount sees: no OSS_* variables, so credentials come from files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSS_")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def _passwd_file(tmp_path: Path) -> Path:
    path = tmp_path / "passwd-ossfs"
    path.write_text(f"{BUCKET}:{ACCESS_KEY_ID}:{ACCESS_KEY_SECRET}\n")
    path.chmod(0o600)
    return path


def _mount_options(path: Path) -> list[str]:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1].replace("\\040", " ") == str(path):
            return [fields[0], fields[2], *fields[3].split(",")]
    return []


def _umount(mountpoint: Path) -> None:
    if is_mounted(mountpoint):
        subprocess.run(["umount", str(mountpoint)], check=True, timeout=30)
    assert not is_mounted(mountpoint)
    wait_daemon_gone(mountpoint)


@pytest.mark.mount
@pytest.mark.usefixtures("helper_ossfs")
def test_mount_t_fuse_ossfs_reads_a_file_and_umount_unmounts(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.put_object(BUCKET, "pre/sub/hello.txt", b"hello through mount(8)\n")
    emulator.put_object(BUCKET, "outside.txt", b"not shown")
    mp = tmp_path / "mnt"
    mp.mkdir()
    options = (
        f"endpoint={emulator.endpoint},passwd_file={_passwd_file(tmp_path)},ro,allow_other,"
        "_netdev,nofail,metadata_ttl=5,file_mode=440,nodev"
    )
    result = subprocess.run(
        ["mount", "-t", "fuse.ossfs", f"oss://{BUCKET}/pre", str(mp), "-o", options],
        capture_output=True,
        text=True,
        timeout=60,
        env=_no_oss_env(),
        check=False,
    )
    try:
        assert result.returncode == 0, result.stderr
        assert (mp / "sub" / "hello.txt").read_bytes() == b"hello through mount(8)\n"
        assert os.listdir(mp) == ["sub"]
        assert os.stat(mp / "sub" / "hello.txt").st_mode & 0o777 == 0o440
        shown = _mount_options(mp)
        assert shown[:2] == [f"oss://{BUCKET}/pre", "fuse.ossfs"]
        assert {"ro", "nodev", "allow_other"} <= set(shown[2:])
    finally:
        _umount(mp)


@pytest.mark.mount
@pytest.mark.usefixtures("helper_ossfs")
def test_fstab_lines_mount_read_only_with_rw_and_mount_a_is_idempotent(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.put_object(BUCKET, "f.txt", b"from fstab\n")
    emulator.put_object(BUCKET, "sub/g.txt", b"from the 1.x form\n")
    mp1 = tmp_path / "fstab mnt"  # a space: fstab writes it \040
    mp2 = tmp_path / "legacy"
    escaped = str(mp1).replace(" ", "\\040")
    common = f"_netdev,nofail,endpoint={emulator.endpoint},passwd_file={_passwd_file(tmp_path)}"
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# <source>  <mountpoint>  <type>  <options>  <dump>  <pass>\n"
        f"oss://{BUCKET}/  {escaped}  fuse.ossfs  defaults,rw,{common},metadata_ttl=forever  0 0\n"
        f"{BUCKET}:/sub  {mp2}  fuse.ossfs  {common}  0 0\n"
    )
    mount_a = ["mount", "-a", "--fstab", str(fstab)]
    for mp in (mp1, mp2):
        mp.mkdir()
    try:
        first = subprocess.run(
            mount_a, capture_output=True, text=True, timeout=60, env=_no_oss_env(), check=False
        )
        assert first.returncode == 0, first.stderr
        assert (mp1 / "f.txt").read_bytes() == b"from fstab\n"
        assert (mp2 / "g.txt").read_bytes() == b"from the 1.x form\n"
        assert _mount_options(mp1)[0] == f"oss://{BUCKET}/" and "ro" in _mount_options(mp1)
        assert _mount_options(mp2)[0] == f"{BUCKET}:/sub"
        with pytest.raises(OSError) as info:
            (mp1 / "new.txt").write_bytes(b"x")
        assert info.value.errno == errno.EROFS
        # What boot does again: the mount table shows each line's source as written, so mount
        # -a sees both lines mounted and mounts nothing twice.
        again = subprocess.run(
            mount_a, capture_output=True, text=True, timeout=60, env=_no_oss_env(), check=False
        )
        assert again.returncode == 0, again.stderr
        mounts = Path("/proc/self/mounts").read_text()
        assert mounts.count(f" {escaped} ") == 1 and mounts.count(f" {mp2} ") == 1
    finally:
        for mp in (mp1, mp2):
            _umount(mp)


@pytest.mark.mount
@pytest.mark.usefixtures("helper_ossfs")
@pytest.mark.parametrize(
    ("options", "starts"),
    [
        ("metadata_ttl=soon,passwd_file={pw}", "invalid --metadata-ttl 'soon'"),
        ("metadata_ttl=5", "no credentials found: looked at"),
    ],
    ids=["bad-ttl", "no-credentials"],
)
def test_mount_t_fuse_ossfs_errors_are_one_line_naming_the_o_spelling(
    emulator: EmulatorServer, tmp_path: Path, options: str, starts: str
) -> None:
    mp = tmp_path / "mnt"
    mp.mkdir()
    given = f"endpoint={emulator.endpoint}," + options.format(pw=_passwd_file(tmp_path))
    result = subprocess.run(
        ["mount", "-t", "fuse.ossfs", f"oss://{BUCKET}", str(mp), "-o", given],
        capture_output=True,
        text=True,
        timeout=60,
        env=_no_oss_env(),
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.startswith(f"ossfs mount: error: {starts}"), result.stderr
    assert result.stderr.endswith("--cache-size 1GiB is cache_size=1GiB)\n")
    assert len(result.stderr.splitlines()) == 1
    assert not is_mounted(mp)
