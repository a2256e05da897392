from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ossfs.app.mounting import (
    MountConfig,
    _credentials_words,
    _endpoint_words,
    build_store,
    check_mountpoint,
    fuse_options,
    read_ahead_kib,
)
from ossfs.core.errors import UsageError
from ossfs.core.url import OssLocation
from ossfs.emulator import EmulatorServer
from ossfs.store.credentials import Credentials
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET


def _config(**overrides: object) -> MountConfig:
    base: dict[str, object] = {
        "location": OssLocation("bucket", ""),
        "mountpoint": Path("/mnt/x"),
        "endpoint": "http://127.0.0.1:1",
        "credentials": None,
    }
    base.update(overrides)
    return MountConfig(**base)  # type: ignore[arg-type]


def test_check_mountpoint_rejects_missing_file_and_nonempty(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        check_mountpoint(tmp_path / "missing", nonempty_ok=False)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        check_mountpoint(file, nonempty_ok=False)
    with pytest.raises(UsageError, match="not empty"):
        check_mountpoint(tmp_path, nonempty_ok=False)
    check_mountpoint(tmp_path, nonempty_ok=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    check_mountpoint(empty, nonempty_ok=False)


def test_mount_config_validates_sizes_and_modes() -> None:
    with pytest.raises(UsageError, match="block-size"):
        _config(block_size_bytes=100)
    with pytest.raises(UsageError, match="cache-size"):
        _config(cache_size_bytes=1 << 20, block_size_bytes=1 << 20)
    with pytest.raises(UsageError, match="file-mode"):
        _config(file_mode=0o10000)
    with pytest.raises(UsageError, match="max-memory"):
        _config(cache_size_bytes=2 << 30, max_memory_bytes=1 << 30)


def test_mount_config_stall_rule_is_bounded_by_the_retry_budget() -> None:
    with pytest.raises(UsageError, match="--low-speed-limit"):
        _config(low_speed_limit_bytes=0)
    with pytest.raises(UsageError, match=r"--low-speed-time 30: .* less than --retry-budget"):
        _config(low_speed_time_s=30, retry_budget_s=30.0)
    with pytest.raises(UsageError, match="--low-speed-time"):
        _config(low_speed_time_s=0)
    assert _config(low_speed_time_s=5).stall_window_s == 5
    # Unset: 10 s, or a third of a shorter budget (a stall is retried within it).
    assert _config().stall_window_s == 10
    assert _config(retry_budget_s=6.0).stall_window_s == 2
    assert _config(retry_budget_s=2.0).stall_window_s == 1


def test_build_store_reaches_oss_as_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: EmulatorServer
) -> None:
    """The mount's store takes its proxies and CA bundle from the environment: the endpoint's
    name does not resolve, only the proxy (the emulator, which takes absolute-URI requests)
    can answer."""
    emulator.put_object(BUCKET, "p.txt", b"through the proxy")
    port = emulator.endpoint.rsplit(":", 1)[1]
    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("HTTP_PROXY", emulator.endpoint)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    config = _config(
        location=OssLocation(BUCKET, ""),
        endpoint=f"http://oss-test.invalid:{port}",
        credentials=Credentials(ACCESS_KEY_ID, ACCESS_KEY_SECRET),
    )
    with build_store(config) as store:
        assert store.config.ca_bundle == str(bundle)
        assert store.get_range("p.txt", 0, 7) == b"through"


def test_fuse_options_follow_metadata_ttl_and_passthrough() -> None:
    opts = fuse_options(
        _config(metadata_ttl_s=5.0, fuse_options=(("nonempty", True), ("fsname", "x")))
    )
    assert opts["entry_timeout"] == opts["attr_timeout"] == opts["negative_timeout"] == "5"
    assert opts["fsname"] == "x"
    assert "nonempty" not in opts
    assert "allow_other" not in opts
    assert fuse_options(_config(allow_other=True))["allow_other"] is True
    forever = fuse_options(_config(metadata_ttl_s=float("inf")))
    assert float(str(forever["attr_timeout"])) > 86400


def test_fuse_options_drop_what_libfuse3_refuses_and_map_max_readahead() -> None:
    legacy = (("big_writes", True), ("max_readahead", "4194304"), ("large_read", True))
    config = _config(fuse_options=legacy)
    opts = fuse_options(config)
    assert not {"big_writes", "max_readahead", "large_read"} & set(opts)
    assert opts["max_read"] == str(1 << 20)
    assert read_ahead_kib(config) == 4096
    assert read_ahead_kib(_config()) == 1024


def _ossfs(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m ossfs ARGS`` with no credentials in the environment and HOME at ``home``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OSS_")}
    return subprocess.run(
        [sys.executable, "-m", "ossfs", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "HOME": str(home), **(env or {})},
    )


_ANON_MOUNT = ["mount", "oss://bucket", "MP", "--anonymous", "--endpoint", "h"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["mount", "s3://bucket", "MP"], "oss://BUCKET"),
        (["mount", "oss://Bad_Name", "MP"], "invalid bucket name"),
        (
            [
                "mount",
                "oss://bucket",
                "MP",
                "--endpoint",
                "http://127.0.0.1:9",
                "--passwd-file",
                "PW",
            ],
            "no credentials found: looked at $OSS_ACCESS_KEY_ID",
        ),
        (["mount", "oss://bucket", "MP", "--anonymous"], "--endpoint"),
        (
            [
                "mount",
                "oss://bucket",
                "MP",
                "--anonymous",
                "--endpoint",
                "h",
                "--cache-size",
                "lots",
            ],
            "cache-size",
        ),
        (
            [
                "mount",
                "oss://bucket",
                "MP",
                "--anonymous",
                "--endpoint",
                "h",
                "--metadata-ttl",
                "-3",
            ],
            "metadata-ttl",
        ),
        (
            [*_ANON_MOUNT, "--low-speed-limit", "fast"],
            "invalid --low-speed-limit 'fast'",
        ),
        (
            [*_ANON_MOUNT, "--low-speed-time", "40"],
            "invalid --low-speed-time 40",
        ),
        (
            ["oss://bucket", "MP", "-o", "anonymous,endpoint=h,low_speed_time=30,retry_budget=9"],
            "invalid --low-speed-time 30",
        ),
        (["mount", "oss://bucket", "MP", "--file-mode", "rw"], "invalid mode"),
        (["mount", "oss://bucket", "MP", "--no-such-option"], "unrecognized"),
        (["umount", "/proc/definitely/not/mounted"], "not mounted"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    passwd = tmp_path / "passwd-ossfs"
    passwd.write_text("# no credentials here\n")
    passwd.chmod(0o600)
    args = [{"MP": str(tmp_path / "mp"), "PW": str(passwd)}.get(a, a) for a in args]
    result = _ossfs(*args, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_mount_read_timeout_is_accepted_with_a_warning(tmp_path: Path) -> None:
    """Old command lines and fstab lines still parse; the flag says it no longer does anything
    (here the mount then stops at the missing mountpoint)."""
    result = _ossfs(
        "mount",
        "oss://bucket",
        str(tmp_path / "nope"),
        "--anonymous",
        "--endpoint",
        "http://127.0.0.1:9",
        "--read-timeout",
        "5",
        home=tmp_path,
    )
    assert result.returncode == 2
    warning, error = result.stderr.strip().splitlines()
    assert "--read-timeout is no longer used" in warning and "--low-speed-time" in warning
    assert "does not exist" in error


def test_cli_mount_missing_mountpoint_is_exit_2(tmp_path: Path) -> None:
    result = _ossfs(
        "mount",
        "oss://bucket",
        str(tmp_path / "nope"),
        "--anonymous",
        "--endpoint",
        "http://127.0.0.1:9",
        home=tmp_path,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "mkdir" in result.stderr


def test_tune_malloc_takes_effect_on_glibc() -> None:
    import platform

    from ossfs.app.mounting import tune_malloc

    assert tune_malloc() is (platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize(
    ("credentials", "source", "region", "words"),
    [
        (
            Credentials("LTAIkeyid", "s3cr3t", "t0ken"),
            "/root/.passwd-ossfs",
            "cn-hangzhou",
            "endpoint http://127.0.0.1:1 (region cn-hangzhou); temporary credentials (STS token) "
            "from /root/.passwd-ossfs",
        ),
        (
            None,
            "--anonymous",
            None,
            "endpoint http://127.0.0.1:1; no credentials, unsigned requests (--anonymous)",
        ),
    ],
)
def test_mount_log_says_endpoint_and_credentials_source_never_a_secret(
    credentials: Credentials | None,
    source: str,
    region: str | None,
    words: str,
) -> None:
    config = _config(credentials=credentials, credentials_source=source, region=region)
    said = f"endpoint {_endpoint_words(config)}; {_credentials_words(config)}"
    assert said == words
    assert "s3cr3t" not in said and "t0ken" not in said and "LTAIkeyid" not in said
