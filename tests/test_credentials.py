"""Credential sources, endpoint resolution and their precedence; then the real commands in a
subprocess (one-line errors, exit 2, no secret on stderr) and ``ossfs verify`` against the local
server with credentials from files."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.app.credentials import (
    Access,
    AccessOptions,
    check_private,
    credentials_from_env,
    find_credentials,
    read_credentials_file,
    read_passwd_file,
    resolve_access,
)
from ossfs.app.endpoints import check_region, normalize_endpoint, region_endpoint, resolve_endpoint
from ossfs.core.errors import UsageError
from ossfs.emulator import EmulatorServer
from ossfs.store.config import OssConfig
from ossfs.store.credentials import Credentials
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET

ENV_KEYS = {"OSS_ACCESS_KEY_ID": "env-id", "OSS_ACCESS_KEY_SECRET": "env-secret"}
SECRET = "Sup3rS3cretValue"  # must never show up in a message


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def system_file(tmp_path: Path) -> Path:
    """Where /etc/passwd-ossfs would be (absent until a test writes it)."""
    return tmp_path / "etc-passwd-ossfs"


def _find(
    options: AccessOptions,
    env: dict[str, str],
    system_file: Path,
    bucket: str = "bkt",
) -> tuple[Credentials | None, str]:
    profile = (
        read_credentials_file(options.credentials_file, profile=options.profile)
        if options.credentials_file
        else None
    )
    return find_credentials(
        options, env, bucket=bucket, profile=profile, system_passwd_file=system_file
    )


# -- environment ----------------------------------------------------------------------------------


def test_credentials_from_env_none_both_token_and_partial() -> None:
    assert credentials_from_env({}) is None
    assert credentials_from_env({"OSS_ACCESS_KEY_ID": " ", "OSS_ACCESS_KEY_SECRET": ""}) is None
    assert credentials_from_env(ENV_KEYS) == Credentials("env-id", "env-secret")
    assert credentials_from_env({**ENV_KEYS, "OSS_SESSION_TOKEN": "tok"}) == Credentials(
        "env-id", "env-secret", "tok"
    )
    with pytest.raises(UsageError, match=r"OSS_ACCESS_KEY_ID set but OSS_ACCESS_KEY_SECRET not"):
        credentials_from_env({"OSS_ACCESS_KEY_ID": "x"})
    with pytest.raises(UsageError, match=r"OSS_SESSION_TOKEN set but OSS_ACCESS_KEY_ID and"):
        credentials_from_env({"OSS_SESSION_TOKEN": SECRET})


def test_credentials_repr_hides_secret_and_token() -> None:
    text = repr(Credentials("id", SECRET, SECRET + "tok"))
    assert "id" in text and SECRET not in text and "security_token=***" in text


# -- precedence -----------------------------------------------------------------------------------


def test_precedence_anonymous_env_file_user_passwd_system_passwd(
    tmp_path: Path, home: Path, system_file: Path
) -> None:
    config = _write(tmp_path / "ossutil", "[default]\naccessKeyId = file-id\naccessKeySecret = s\n")
    _write(home / ".passwd-ossfs", "user-id:s\n")
    _write(system_file, "system-id:s\n", 0o640)
    env = {**ENV_KEYS, "HOME": str(home)}
    with_file = AccessOptions(credentials_file=config)

    assert _find(AccessOptions(anonymous=True, credentials_file=config), env, system_file) == (
        None,
        "--anonymous",
    )
    creds, source = _find(with_file, env, system_file)
    assert (creds and creds.access_key_id, source) == (
        "env-id",
        "$OSS_ACCESS_KEY_ID/$OSS_ACCESS_KEY_SECRET",
    )
    env = {"HOME": str(home)}
    creds, source = _find(with_file, env, system_file)
    assert (creds and creds.access_key_id, source) == ("file-id", f"{config} [default]")
    creds, source = _find(AccessOptions(), env, system_file)
    assert (creds and creds.access_key_id, source) == ("user-id", str(home / ".passwd-ossfs"))
    (home / ".passwd-ossfs").unlink()
    creds, source = _find(AccessOptions(), env, system_file)
    assert (creds and creds.access_key_id, source) == ("system-id", str(system_file))


def test_passwd_file_option_replaces_the_default_files(
    tmp_path: Path, home: Path, system_file: Path
) -> None:
    _write(home / ".passwd-ossfs", "user-id:s\n")
    mine = _write(tmp_path / "mine", "mine-id:s\n")
    creds, source = _find(AccessOptions(passwd_file=mine), {"HOME": str(home)}, system_file)
    assert (creds and creds.access_key_id, source) == ("mine-id", str(mine))
    empty = _write(tmp_path / "empty", "# nothing\n")
    with pytest.raises(UsageError, match="no credentials found") as info:
        _find(AccessOptions(passwd_file=empty), {"HOME": str(home)}, system_file)
    assert ".passwd-ossfs" not in str(info.value)
    with pytest.raises(UsageError, match=r"--passwd-file .*missing: no such file"):
        _find(AccessOptions(passwd_file=tmp_path / "missing"), {}, system_file)


def test_nothing_found_names_every_place_looked_at(home: Path, system_file: Path) -> None:
    with pytest.raises(UsageError) as info:
        _find(AccessOptions(), {"HOME": str(home)}, system_file)
    assert str(info.value) == (
        "no credentials found: looked at $OSS_ACCESS_KEY_ID/$OSS_ACCESS_KEY_SECRET (not set), "
        f"--credentials-file (not given), {home}/.passwd-ossfs (missing), "
        f"{system_file} (missing); set one of them, or pass --anonymous for a public bucket"
    )


def test_nothing_found_explains_each_file(tmp_path: Path, home: Path, system_file: Path) -> None:
    config = _write(tmp_path / "cfg", "[default]\nregion = cn-beijing\n")
    _write(home / ".passwd-ossfs", "other-bucket:id:s\n")
    with pytest.raises(UsageError) as info:
        _find(AccessOptions(credentials_file=config), {"HOME": str(home)}, system_file)
    message = str(info.value)
    assert f"{config} [default] (no accessKeyId/accessKeySecret)" in message
    assert "(no line for bucket bkt and no ACCESS_KEY_ID:ACCESS_KEY_SECRET line)" in message
    with pytest.raises(UsageError, match=r"~/.passwd-ossfs \(\$HOME not set\)"):
        _find(AccessOptions(), {}, system_file)


def test_unreadable_default_passwd_file_is_noted_not_fatal(home: Path, system_file: Path) -> None:
    loop = home / ".passwd-ossfs"
    loop.symlink_to(loop)  # ELOOP: unreadable even for root
    _write(system_file, "system-id:s\n", 0o640)
    creds, _ = _find(AccessOptions(), {"HOME": str(home)}, system_file)
    assert creds == Credentials("system-id", "s")
    system_file.unlink()
    with pytest.raises(UsageError, match=r"\.passwd-ossfs \(cannot read: Too many levels"):
        _find(AccessOptions(), {"HOME": str(home)}, system_file)
    with pytest.raises(UsageError, match=r"cannot read --passwd-file .*: Too many levels"):
        _find(AccessOptions(passwd_file=loop), {}, system_file)


def test_passwd_file_that_is_a_directory_is_refused(home: Path, system_file: Path) -> None:
    (home / ".passwd-ossfs").mkdir()
    with pytest.raises(UsageError, match=r"\.passwd-ossfs is not a regular file"):
        _find(AccessOptions(), {"HOME": str(home)}, system_file)


def test_anonymous_excludes_passwd_file_and_profile_needs_a_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--anonymous and --passwd-file"):
        AccessOptions(anonymous=True, passwd_file=tmp_path)
    with pytest.raises(UsageError, match="--profile selects a section of --credentials-file"):
        AccessOptions(profile="dev")


# -- the ossfs 1.x passwd file -------------------------------------------------------------------


def test_passwd_file_prefers_the_bucket_line_and_skips_comments(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p",
        "# comment\n\n  default-id:default-secret  \nbkt:bkt-id:bkt-secret\nother:o:o\r\n",
    )
    assert read_passwd_file(path, bucket="bkt") == Credentials("bkt-id", "bkt-secret")
    assert read_passwd_file(path, bucket="nope") == Credentials("default-id", "default-secret")
    only_buckets = _write(tmp_path / "q", "a:id:s\n")
    assert read_passwd_file(only_buckets, bucket="b") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"id:{SECRET}\na:b:c:{SECRET}\n", "line 2: expected BUCKET:ACCESS_KEY_ID:"),
        (f"just-{SECRET}\n", "line 1: expected"),
        (f"bkt::{SECRET}\n", "line 1: expected"),
        (f"bkt:id:{SECRET}\n# x\nbkt:id2:{SECRET}\n", "line 3: a second line for bucket bkt"),
        (f"id:{SECRET}\nid2:{SECRET}\n", "line 2: a second ACCESS_KEY_ID:ACCESS_KEY_SECRET line"),
    ],
)
def test_malformed_passwd_file_names_the_line_not_the_secret(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path / "p", text)
    with pytest.raises(UsageError, match=message) as info:
        read_passwd_file(path, bucket="bkt")
    assert SECRET not in str(info.value)
    assert str(path) in str(info.value)


def test_passwd_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.write_bytes(b"id:\xff\xfe\n")
    path.chmod(0o600)
    with pytest.raises(UsageError, match="not UTF-8"):
        read_passwd_file(path, bucket="bkt")


@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from(["", "a", "b", "c"]), st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True)
        ),
        max_size=6,
        unique_by=lambda t: t[0],
    ),
    bucket=st.sampled_from(["a", "b", "z"]),
)
def test_passwd_file_answer_is_bucket_line_else_default_line(
    lines: list[tuple[str, str]], bucket: str
) -> None:
    text = "".join(f"{b}:id-{b}:{k}\n" if b else f"id-:{k}\n" for b, k in lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp) / "p", text)
        got = read_passwd_file(path, bucket=bucket)
    entries = dict(lines)
    if bucket in entries:
        assert got == Credentials(f"id-{bucket}", entries[bucket])
    elif "" in entries:
        assert got == Credentials("id-", entries[""])
    else:
        assert got is None


# -- permissions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "group_read_ok", "message"),
    [
        (0o644, False, r"accessible by other users \(mode 644\) .*; chmod 600"),
        (0o640, False, r"accessible by its group \(mode 640\) .*; chmod 600"),
        (0o604, True, r"accessible by other users \(mode 604\) .*; chmod 640"),
        (0o660, True, r"accessible by its group \(mode 660\) .*; chmod 640"),
        (0o700, False, None),
        (0o400, False, None),
        (0o640, True, None),
    ],
)
def test_check_private(tmp_path: Path, mode: int, group_read_ok: bool, message: str | None) -> None:
    path = _write(tmp_path / "f", "x", mode)
    if message is None:
        check_private(path, group_read_ok=group_read_ok)
    else:
        with pytest.raises(UsageError, match=message):
            check_private(path, group_read_ok=group_read_ok)


def test_readable_passwd_and_credentials_files_are_refused(
    tmp_path: Path, home: Path, system_file: Path
) -> None:
    _write(home / ".passwd-ossfs", f"id:{SECRET}\n", 0o640)
    with pytest.raises(UsageError, match=r"\.passwd-ossfs is accessible by its group") as info:
        _find(AccessOptions(), {"HOME": str(home)}, system_file)
    assert SECRET not in str(info.value)
    (home / ".passwd-ossfs").unlink()
    _write(system_file, f"id:{SECRET}\n", 0o640)  # ossfs 1.x's documented mode for /etc
    assert _find(AccessOptions(), {"HOME": str(home)}, system_file)[0] == Credentials("id", SECRET)
    system_file.chmod(0o644)
    with pytest.raises(UsageError, match=f"chmod 640 {system_file}"):
        _find(AccessOptions(), {"HOME": str(home)}, system_file)
    config = _write(
        tmp_path / "cfg", f"[default]\naccessKeyId=i\naccessKeySecret={SECRET}\n", 0o644
    )
    with pytest.raises(UsageError, match=f"chmod 600 {config}"):
        read_credentials_file(config)


# -- ossutil config files -------------------------------------------------------------------------


def test_ossutil1_credentials_section(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c",
        "[Credentials]\nlanguage=EN\nendpoint=oss-cn-shanghai.aliyuncs.com\n"
        f"accessKeyID=id1\naccessKeySecret={SECRET}\nstsToken=\n\n[Bucket-Endpoint]\n",
    )
    profile = read_credentials_file(path)
    assert profile.credentials == Credentials("id1", SECRET)
    assert (profile.endpoint, profile.region, profile.name) == (
        "oss-cn-shanghai.aliyuncs.com",
        None,
        f"{path} [Credentials]",
    )
    assert SECRET not in repr(profile)


def test_ossutil2_default_and_named_profiles_any_key_spelling(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c",
        "# ossutil 2.0\n[default]\naccess-key-id = id2\naccess_key_secret = s2\n"
        "region = cn-hangzhou\n\n[profile dev]\nmode = StsToken\nAccessKeyId = id3\n"
        "accessKeySecret = s3\nsts-token = t3\nregion = ap-southeast-1\n"
        "endpoint = https://oss-ap-southeast-1-internal.aliyuncs.com\n"
        "[Credentials]\naccessKeyID=old\naccessKeySecret=old\n",
    )
    default = read_credentials_file(path)
    assert (default.credentials, default.region, default.endpoint) == (
        Credentials("id2", "s2"),
        "cn-hangzhou",
        None,
    )
    dev = read_credentials_file(path, profile="dev")
    assert dev.credentials == Credentials("id3", "s3", "t3")
    assert dev.name == f"{path} [profile dev]"
    assert dev.endpoint == "https://oss-ap-southeast-1-internal.aliyuncs.com"
    assert read_credentials_file(path, profile="default") == default
    anonymous = _write(tmp_path / "a", "[default]\nmode = Anonymous\nregion = cn-beijing\n")
    options = AccessOptions(credentials_file=anonymous)
    assert _find(options, {}, tmp_path / "none") == (
        None,
        f"{anonymous} [default] (mode Anonymous)",
    )


@pytest.mark.parametrize(
    ("text", "profile", "message"),
    [
        (f"accessKeyId={SECRET}\n", None, "line 1: not an ossutil config file"),
        (f"[default]\naccessKeyId=a\n{SECRET}\n", None, r"line 3: expected key = value"),
        ("[default]\na=1\n[default]\n", None, r"line 3: section \[default\] twice"),
        (
            f"[default]\naccessKeySecret={SECRET}\naccesskeysecret=x\n",
            None,
            "line 3: accesskeysecret twice",
        ),
        (f"[default]\naccess_key_secret={SECRET}\naccessKeySecret=x\n", None, "given twice"),
        (
            "[other]\na=1\n",
            None,
            r"has no \[default\] or \[Credentials\] section \(it has: \[other\]\)",
        ),
        ("[default]\na=1\n", "dev", r"has no \[profile dev\] section"),
        (f"[default]\naccessKeySecret={SECRET}\n", None, "accessKeyId is missing"),
        (
            f"[default]\nmode=EcsRamRole\naccessKeySecret={SECRET}\n",
            None,
            "mode EcsRamRole is not supported",
        ),
        ("[default]\nsource-profile=base\n", None, "source-profile is not supported"),
        ("[default]\nregion=oss-cn-hangzhou\n", None, "that is an endpoint host name"),
        ("", None, r"has no \[default\] or \[Credentials\] section \(it has: none\)"),
    ],
)
def test_malformed_credentials_file_is_one_clear_line(
    tmp_path: Path, text: str, profile: str | None, message: str
) -> None:
    path = _write(tmp_path / "cfg", text)
    with pytest.raises(UsageError, match=message) as info:
        read_credentials_file(path, profile=profile)
    assert SECRET not in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_credentials_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--credentials-file .*nope: no such file"):
        read_credentials_file(tmp_path / "nope")


# -- endpoints ------------------------------------------------------------------------------------


def test_endpoint_order_argument_env_region_file_endpoint_file_region() -> None:
    env = {"OSS_ENDPOINT": "oss-cn-shenzhen.aliyuncs.com/"}
    with_file = functools.partial(
        resolve_endpoint, file_endpoint="file.example", file_region="us-west-1", file_name="F"
    )
    got = with_file(env, endpoint="http://127.0.0.1:9/", region="cn-beijing")
    assert (got.url, got.region, got.source) == ("http://127.0.0.1:9", "cn-beijing", "--endpoint")
    got = with_file(env, region="cn-beijing")
    assert (got.url, got.source) == ("https://oss-cn-shenzhen.aliyuncs.com", "$OSS_ENDPOINT")
    got = with_file({}, region="cn-beijing")
    assert (got.url, got.source) == ("https://oss-cn-beijing.aliyuncs.com", "--region")
    got = with_file({})
    assert (got.url, got.region, got.source) == (
        "https://file.example",
        "us-west-1",
        "the endpoint in F",
    )
    got = resolve_endpoint({}, file_region="us-west-1", file_name="F", internal=True)
    assert (got.url, got.region, got.source) == (
        "https://oss-us-west-1-internal.aliyuncs.com",
        "us-west-1",
        "the region in F",
    )
    got = resolve_endpoint({}, endpoint="h")
    assert (got.url, got.region) == ("https://h", None)


def test_internal_applies_only_to_a_derived_endpoint() -> None:
    got = resolve_endpoint({}, region="cn-hangzhou", internal=True)
    assert got.url == "https://oss-cn-hangzhou-internal.aliyuncs.com"
    with pytest.raises(UsageError, match=r"--internal only applies .* comes from \$OSS_ENDPOINT"):
        resolve_endpoint({"OSS_ENDPOINT": "h"}, region="cn-hangzhou", internal=True)
    with pytest.raises(UsageError, match=r"--internal only applies .* comes from --endpoint"):
        resolve_endpoint({}, endpoint="h", internal=True)


def test_no_endpoint_says_pass_endpoint_or_region() -> None:
    with pytest.raises(UsageError, match=r"no endpoint: pass --endpoint URL or --region REGION"):
        resolve_endpoint({})


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ("cn-hangzhou", None),
        ("ap-southeast-1", None),
        ("us-east-1", None),
        ("CN-Hangzhou", "use a region ID such as cn-hangzhou"),
        ("cn_hangzhou", "use a region ID"),
        ("cn--hangzhou", "use a region ID"),
        ("-cn", "use a region ID"),
        ("", "use a region ID"),
        ("cn-hangzhou.aliyuncs.com", "use a region ID"),
        ("x" * 65, "use a region ID"),
        ("oss-cn-hangzhou-internal", "endpoint host name; use the region ID, e.g. 'cn-hangzhou'"),
    ],
)
def test_check_region(region: str, message: str | None) -> None:
    if message is None:
        assert check_region(region, what="--region") == region
        assert region_endpoint(region) == f"https://oss-{region}.aliyuncs.com"
    else:
        with pytest.raises(UsageError, match=message):
            check_region(region, what="--region")


@given(st.text(max_size=30))
def test_check_region_accepts_exactly_lowercase_dash_separated_ids(text: str) -> None:
    parts = text.split("-")
    valid = not text.startswith("oss-") and all(
        p and all(c in "abcdefghijklmnopqrstuvwxyz0123456789" for c in p) for p in parts
    )
    try:
        assert check_region(text, what="--region") == text
        accepted = True
    except UsageError:
        accepted = False
    assert accepted == valid


def test_normalize_endpoint() -> None:
    assert normalize_endpoint(" oss-cn-hangzhou.aliyuncs.com/ ", what="x") == (
        "https://oss-cn-hangzhou.aliyuncs.com"
    )
    assert normalize_endpoint("http://127.0.0.1:9", what="x") == "http://127.0.0.1:9"
    with pytest.raises(UsageError, match="use http:// or https://"):
        normalize_endpoint("ftp://h", what="--endpoint")
    with pytest.raises(UsageError, match="no host name"):
        normalize_endpoint("https:///", what="--endpoint")
    with pytest.raises(UsageError, match="--endpoint is empty"):
        normalize_endpoint(" ", what="--endpoint")


# -- resolve_access: both together ---------------------------------------------------------------


def test_resolve_access_takes_endpoint_and_region_from_the_credentials_file(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path / "c", f"[default]\naccessKeyId=i\naccessKeySecret={SECRET}\nregion=cn-beijing\n"
    )
    access = resolve_access(AccessOptions(credentials_file=path), {}, bucket="b")
    assert access == Access(
        endpoint="https://oss-cn-beijing.aliyuncs.com",
        region="cn-beijing",
        credentials=Credentials("i", SECRET),
        credentials_source=f"{path} [default]",
        endpoint_source=f"the region in {path} [default]",
    )
    assert SECRET not in repr(access)
    config = OssConfig(endpoint=access.endpoint, bucket="b", region=access.region)
    assert config.signature_version == "v4"
    override = resolve_access(
        AccessOptions(credentials_file=path, region="cn-shanghai", anonymous=True), {}, bucket="b"
    )
    assert (override.endpoint, override.region, override.credentials) == (
        "https://oss-cn-shanghai.aliyuncs.com",
        "cn-shanghai",
        None,
    )


def test_resolve_access_v1_without_region(system_file: Path) -> None:
    access = resolve_access(
        AccessOptions(endpoint="http://127.0.0.1:1"),
        ENV_KEYS,
        bucket="b",
        system_passwd_file=system_file,
    )
    assert access.region is None and access.credentials == Credentials("env-id", "env-secret")


# -- the real commands ----------------------------------------------------------------------------


def _ossfs(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OSS_")}
    return subprocess.run(
        [sys.executable, "-m", "ossfs", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, "HOME": str(home), **(env or {})},
    )


def _one_line_exit_2(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr, result.stderr
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("command", ["mount", "verify"])
@pytest.mark.parametrize(
    ("files", "extra", "needle"),
    [
        (
            {"pw": (f"bkt:id:{SECRET}\n", 0o644)},
            ["--passwd-file", "pw", "--endpoint", "http://127.0.0.1:9"],
            "chmod 600",
        ),
        (
            {"pw": (f"bkt:id:{SECRET}:x\n", 0o600)},
            ["--passwd-file", "pw", "--endpoint", "http://127.0.0.1:9"],
            "line 1: expected",
        ),
        (
            {"cfg": (f"[default]\nid={SECRET}\n{SECRET}\n", 0o600)},
            ["--credentials-file", "cfg"],
            "line 3",
        ),
        (
            {"cfg": ("[default]\nregion=cn-beijing\n", 0o600)},
            ["--credentials-file", "cfg", "--profile", "x"],
            "[profile x]",
        ),
        ({}, ["--region", "Hangzhou"], "invalid --region 'Hangzhou'"),
        ({}, ["--endpoint", "http://127.0.0.1:9", "--internal"], "--internal only applies"),
        ({}, ["--anonymous"], "no endpoint: pass --endpoint URL or --region REGION"),
        ({}, ["--anonymous", "--passwd-file", "pw"], "exclude each other"),
        ({}, ["--profile", "dev"], "--profile selects"),
    ],
)
def test_cli_credential_errors_are_one_line_exit_2_without_secrets(
    tmp_path: Path,
    command: str,
    files: dict[str, tuple[str, int]],
    extra: list[str],
    needle: str,
) -> None:
    paths = {name: str(_write(tmp_path / name, text, mode)) for name, (text, mode) in files.items()}
    mountpoint = tmp_path / "mp"
    mountpoint.mkdir()
    target = [str(mountpoint)] if command == "mount" else []
    args = [paths.get(a, a) for a in extra]
    result = _ossfs(command, "oss://bkt", *target, *args, home=tmp_path, env={"OSS_ENDPOINT": ""})
    _one_line_exit_2(result, needle)


def test_cli_partial_environment_is_exit_2_and_names_the_missing_one(tmp_path: Path) -> None:
    result = _ossfs(
        "verify",
        "oss://bkt",
        "--endpoint",
        "http://127.0.0.1:9",
        home=tmp_path,
        env={"OSS_ACCESS_KEY_SECRET": SECRET},
    )
    _one_line_exit_2(result, "OSS_ACCESS_KEY_SECRET set but OSS_ACCESS_KEY_ID not")


def test_cli_help_lists_the_new_options(tmp_path: Path) -> None:
    for command in ("mount", "verify"):
        result = _ossfs(command, "--help", home=tmp_path)
        assert result.returncode == 0
        for option in (
            "--credentials-file",
            "--passwd-file",
            "--profile",
            "--internal",
            "--region",
        ):
            assert option in result.stdout


@pytest.mark.parametrize("source", ["passwd", "ossutil1", "ossutil2"])
def test_cli_verify_with_credentials_from_files(
    emulator: EmulatorServer, tmp_path: Path, source: str
) -> None:
    emulator.put_object(BUCKET, "v/a.txt", b"alpha")
    if source == "passwd":
        path = _write(
            tmp_path / "pw",
            f"wrong-id:wrong-secret\n{BUCKET}:{ACCESS_KEY_ID}:{ACCESS_KEY_SECRET}\n",
        )
        args = ["--passwd-file", str(path), "--endpoint", emulator.endpoint]
    elif source == "ossutil1":
        path = _write(
            tmp_path / "cfg",
            f"[Credentials]\nlanguage=EN\nendpoint={emulator.endpoint}\n"
            f"accessKeyID={ACCESS_KEY_ID}\naccessKeySecret={ACCESS_KEY_SECRET}\n",
        )
        args = ["--credentials-file", str(path)]
    else:
        path = _write(
            tmp_path / "cfg",
            f"[default]\naccessKeyId=x\naccessKeySecret=y\n[profile emu]\n"
            f"accessKeyId={ACCESS_KEY_ID}\naccessKeySecret={ACCESS_KEY_SECRET}\n"
            f"region=cn-hangzhou\nendpoint={emulator.endpoint}\n",
        )
        args = ["--credentials-file", str(path), "--profile", "emu"]
    result = _ossfs("verify", f"oss://{BUCKET}/v/", *args, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 OK" in result.stdout
    assert ACCESS_KEY_SECRET not in result.stdout + result.stderr
