"""Where credentials come from, in the order the official tools use them.

1. ``--anonymous``: unsigned requests;
2. the environment: ``OSS_ACCESS_KEY_ID``, ``OSS_ACCESS_KEY_SECRET``, optional
   ``OSS_SESSION_TOKEN`` (STS);
3. ``--credentials-file PATH`` in ossutil's INI format: ossutil 2.0's ``[default]`` or
   ``[profile NAME]`` (``accessKeyId``, ``accessKeySecret``, ``stsToken``, ``region``,
   ``endpoint``, ``mode``), or ossutil 1.x's ``[Credentials]`` (``accessKeyID``,
   ``accessKeySecret``, ``stsToken``, ``endpoint``). Its endpoint and region are used when the
   command line and the environment name none (see `ossfs.app.endpoints`);
4. the ossfs 1.x passwd file: ``--passwd-file PATH`` alone when given, else ``~/.passwd-ossfs``
   then ``/etc/passwd-ossfs``; lines ``BUCKET:ACCESS_KEY_ID:ACCESS_KEY_SECRET`` (preferred for
   that bucket) or ``ACCESS_KEY_ID:ACCESS_KEY_SECRET``, ``#`` comments and blank lines ignored.

A credentials or passwd file that other users may read is refused, like ossfs 1.x does (only
``/etc/passwd-ossfs`` may also be readable by its group, mode 640). When nothing is found, one
message names every place that was looked at.

Secrets never appear in a repr, a message or a log record: messages name files, line numbers and
key names, never values. This module reads the files it is given but never the process
environment or argv (the CLI passes in a mapping and paths).
"""

from __future__ import annotations

import configparser
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ossfs.app.endpoints import check_region, resolve_endpoint
from ossfs.core.errors import UsageError
from ossfs.store.credentials import Credentials

__all__ = [
    "ENV_SOURCE",
    "SYSTEM_PASSWD_FILE",
    "USER_PASSWD_FILE",
    "Access",
    "AccessOptions",
    "Credentials",
    "Profile",
    "check_private",
    "credentials_from_env",
    "find_credentials",
    "read_credentials_file",
    "read_passwd_file",
    "resolve_access",
]

SYSTEM_PASSWD_FILE: Final = Path("/etc/passwd-ossfs")
USER_PASSWD_FILE: Final = ".passwd-ossfs"  # under $HOME
KEY_ID_ENV: Final = "OSS_ACCESS_KEY_ID"
SECRET_ENV: Final = "OSS_ACCESS_KEY_SECRET"
TOKEN_ENV: Final = "OSS_SESSION_TOKEN"
ENV_SOURCE: Final = f"${KEY_ID_ENV}/${SECRET_ENV}"
_PASSWD_FORMAT: Final = "BUCKET:ACCESS_KEY_ID:ACCESS_KEY_SECRET or ACCESS_KEY_ID:ACCESS_KEY_SECRET"
_SUPPORTED_MODES: Final = frozenset({"ak", "ststoken", "anonymous"})
# configparser treats a section named like its default_section as defaults for every section;
# ossutil has no such thing, so the name is one no file can contain.
_NO_DEFAULT_SECTION: Final = "\x00"


@dataclass(frozen=True, slots=True)
class Profile:
    """What one section of an ossutil config file says; every field may be absent.

    ``anonymous`` is ossutil 2.0's ``mode = Anonymous``. ``name`` is ``PATH [SECTION]``.
    """

    name: str
    credentials: Credentials | None = None
    anonymous: bool = False
    endpoint: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class AccessOptions:
    """The command-line choices that decide credentials and endpoint (no secrets here)."""

    anonymous: bool = False
    endpoint: str | None = None
    region: str | None = None
    internal: bool = False
    credentials_file: Path | None = None
    profile: str | None = None
    passwd_file: Path | None = None

    def __post_init__(self) -> None:
        if self.anonymous and self.passwd_file is not None:
            raise UsageError("--anonymous and --passwd-file exclude each other: drop one")
        if self.profile is not None and self.credentials_file is None:
            raise UsageError("--profile selects a section of --credentials-file: pass that too")


@dataclass(frozen=True, slots=True)
class Access:
    """How to reach OSS: endpoint URL, signing region (None: V1), credentials (None:
    anonymous) and, for messages, where the credentials and the endpoint came from."""

    endpoint: str
    region: str | None
    credentials: Credentials | None
    credentials_source: str
    endpoint_source: str


def resolve_access(
    options: AccessOptions,
    env: Mapping[str, str],
    *,
    bucket: str,
    system_passwd_file: Path = SYSTEM_PASSWD_FILE,
) -> Access:
    """Credentials and endpoint for ``bucket`` from ``options``, the environment mapping
    ``env`` (``HOME`` locates ``~/.passwd-ossfs``) and the files they name.

    Raises `UsageError` for anything the user must fix: no credentials or endpoint found, a
    file that is missing, unreadable, malformed or readable by others, an invalid region.
    """
    profile = (
        read_credentials_file(options.credentials_file, profile=options.profile)
        if options.credentials_file is not None
        else None
    )
    endpoint = resolve_endpoint(
        env,
        endpoint=options.endpoint,
        region=options.region,
        internal=options.internal,
        file_endpoint=profile.endpoint if profile else None,
        file_region=profile.region if profile else None,
        file_name=profile.name if profile else "the credentials file",
    )
    credentials, source = find_credentials(
        options, env, bucket=bucket, profile=profile, system_passwd_file=system_passwd_file
    )
    return Access(endpoint.url, endpoint.region, credentials, source, endpoint.source)


def find_credentials(
    options: AccessOptions,
    env: Mapping[str, str],
    *,
    bucket: str,
    profile: Profile | None = None,
    system_passwd_file: Path = SYSTEM_PASSWD_FILE,
) -> tuple[Credentials | None, str]:
    """The first credentials found for ``bucket`` and where they came from.

    ``profile`` is the already-read ``--credentials-file``. Returns ``(None, source)`` for
    anonymous access. Raises `UsageError` naming every place looked at when nothing is found.
    """
    if options.anonymous:
        return None, "--anonymous"
    creds = credentials_from_env(env)
    if creds is not None:
        return creds, ENV_SOURCE
    looked = [f"{ENV_SOURCE} (not set)"]
    if profile is None:
        looked.append("--credentials-file (not given)")
    elif profile.anonymous:
        return None, f"{profile.name} (mode Anonymous)"
    elif profile.credentials is not None:
        return profile.credentials, profile.name
    else:
        looked.append(f"{profile.name} (no accessKeyId/accessKeySecret)")
    if options.passwd_file is None and not env.get("HOME", "").strip():
        looked.append(f"~/{USER_PASSWD_FILE} ($HOME not set)")
    for path, explicit, system in _passwd_files(options, env, system_passwd_file):
        creds, note = _try_passwd_file(path, bucket=bucket, explicit=explicit, system=system)
        if creds is not None:
            return creds, str(path)
        looked.append(f"{path} ({note})")
    raise UsageError(
        f"no credentials found: looked at {', '.join(looked)}; "
        "set one of them, or pass --anonymous for a public bucket"
    )


def credentials_from_env(env: Mapping[str, str]) -> Credentials | None:
    """Credentials from ``OSS_ACCESS_KEY_ID``/``OSS_ACCESS_KEY_SECRET``/``OSS_SESSION_TOKEN``.

    Returns None when none of them is set (empty counts as unset); raises `UsageError` naming
    what is missing when only some are.
    """
    key_id = env.get(KEY_ID_ENV, "").strip()
    secret = env.get(SECRET_ENV, "").strip()
    token = env.get(TOKEN_ENV, "").strip() or None
    if key_id and secret:
        return Credentials(key_id, secret, token)
    if not key_id and not secret and token is None:
        return None
    have = [n for n, v in ((KEY_ID_ENV, key_id), (SECRET_ENV, secret), (TOKEN_ENV, token)) if v]
    missing = [n for n, v in ((KEY_ID_ENV, key_id), (SECRET_ENV, secret)) if not v]
    raise UsageError(
        f"incomplete credentials in the environment: {' and '.join(have)} set but "
        f"{' and '.join(missing)} not; export both, or unset {' and '.join(have)} "
        "to use a credentials or passwd file"
    )


def check_private(path: Path, *, group_read_ok: bool = False) -> None:
    """Raise `UsageError` unless only its owner (and, with ``group_read_ok``, its group, for
    reading) may access ``path``. Missing files are the caller's business (`FileNotFoundError`).
    """
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    allowed = 0o740 if group_read_ok else 0o700
    extra = mode & ~allowed & 0o077
    if not extra:
        return
    who = "other users" if extra & 0o007 else "its group"
    want = "640" if group_read_ok else "600"
    raise UsageError(
        f"{path} is accessible by {who} (mode {mode:03o}) and holds secrets; chmod {want} {path}"
    )


def read_passwd_file(path: Path, *, bucket: str, system: bool = False) -> Credentials | None:
    """The credentials an ossfs 1.x passwd file gives ``bucket``: its ``BUCKET:ID:SECRET``
    line, else its ``ID:SECRET`` line, else None.

    ``system`` (``/etc/passwd-ossfs``) also allows group read permission. Raises
    `OSError` (such as `FileNotFoundError`) if ``path`` cannot be read, and `UsageError` if it is
    readable by others or malformed (the message gives the line number, never the line).
    """
    check_private(path, group_read_ok=system)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    by_bucket: dict[str, tuple[int, Credentials]] = {}
    default: tuple[int, Credentials] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(":")]
        if len(fields) not in (2, 3) or not all(fields):
            raise UsageError(f"{path} line {number}: expected {_PASSWD_FORMAT}")
        entry = (number, Credentials(fields[-2], fields[-1]))
        if len(fields) == 3:
            if fields[0] in by_bucket:
                raise UsageError(
                    f"{path} line {number}: a second line for bucket {fields[0]} "
                    f"(the first is line {by_bucket[fields[0]][0]}); keep one"
                )
            by_bucket[fields[0]] = entry
        elif default is not None:
            raise UsageError(
                f"{path} line {number}: a second ACCESS_KEY_ID:ACCESS_KEY_SECRET line "
                f"(the first is line {default[0]}); keep one"
            )
        else:
            default = entry
    if bucket in by_bucket:
        return by_bucket[bucket][1]
    return default[1] if default is not None else None


def read_credentials_file(path: Path, *, profile: str | None = None) -> Profile:
    """Read an ossutil config file: section ``[profile PROFILE]`` (``[default]`` for
    ``default``) when ``profile`` is given; else ``[default]``, else ``[Credentials]``.

    Section and key names are case-insensitive, and ``-``/``_`` in key names are ignored
    (``access-key-id`` = ``accessKeyId``), as in ossutil. Raises `UsageError` if the file is
    missing, readable by others, malformed, lacks the section, or names an unsupported ``mode``.
    """
    try:
        check_private(path)
    except FileNotFoundError:
        raise UsageError(f"--credentials-file {path}: no such file") from None
    parser = configparser.ConfigParser(
        interpolation=None, default_section=_NO_DEFAULT_SECTION, strict=True
    )
    try:
        parser.read_string(_read_text(path), source=str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise UsageError(
            f"{path} line {exc.lineno}: not an ossutil config file "
            "(expected a [default] or [Credentials] section first)"
        ) from None
    except configparser.DuplicateSectionError as exc:
        raise UsageError(f"{path} line {exc.lineno}: section [{exc.section}] twice") from None
    except configparser.DuplicateOptionError as exc:
        raise UsageError(
            f"{path} line {exc.lineno}: {exc.option} twice in [{exc.section}]"
        ) from None
    except configparser.ParsingError as exc:
        lines = ", ".join(str(number) for number, _ in exc.errors)
        raise UsageError(f"{path} line {lines}: expected key = value") from None
    except configparser.Error:
        raise UsageError(f"{path}: not an ossutil config file (INI)") from None
    sections = {name.lower(): name for name in parser.sections()}
    if profile is not None:
        wanted = ["default", "profile default"] if profile == "default" else [f"profile {profile}"]
    else:
        wanted = ["default", "profile default", "credentials"]
    section = next((sections[w] for w in wanted if w in sections), None)
    if section is None:
        found = ", ".join(f"[{s}]" for s in parser.sections()) or "none"
        missing = f"profile {profile}" if profile not in (None, "default") else "default"
        hint = "" if profile else " or [Credentials]"
        raise UsageError(f"{path} has no [{missing}]{hint} section (it has: {found})")
    name = f"{path} [{section}]"
    values = _normalized(parser[section], name)
    mode = values.get("mode", "").lower()
    if mode and mode not in _SUPPORTED_MODES:
        raise UsageError(
            f"{name}: mode {values['mode']} is not supported by ossfs; "
            "use AK or StsToken (or Anonymous)"
        )
    if "sourceprofile" in values:
        raise UsageError(f"{name}: source-profile is not supported by ossfs; copy the keys here")
    region = values.get("region")
    if region is not None:
        check_region(region, what=f"region in {name}")
    return Profile(
        name=name,
        credentials=_profile_credentials(values, name),
        anonymous=mode == "anonymous",
        endpoint=values.get("endpoint"),
        region=region,
    )


def _normalized(section: configparser.SectionProxy, name: str) -> dict[str, str]:
    """Keys lowercased without ``-``/``_``; empty values dropped (ossutil 1.x writes
    ``stsToken=`` when there is none)."""
    values: dict[str, str] = {}
    for key, value in section.items():
        norm = key.lower().replace("-", "").replace("_", "")
        if norm in values:
            raise UsageError(f"{name}: {key} is given twice (under different spellings)")
        if value.strip():
            values[norm] = value.strip()
    return values


def _profile_credentials(values: dict[str, str], name: str) -> Credentials | None:
    key_id, secret = values.get("accesskeyid"), values.get("accesskeysecret")
    if key_id is None and secret is None:
        return None
    if key_id is None or secret is None:
        missing = "accessKeyId" if key_id is None else "accessKeySecret"
        raise UsageError(f"{name}: {missing} is missing; give both keys or neither")
    return Credentials(key_id, secret, values.get("ststoken"))


def _passwd_files(
    options: AccessOptions, env: Mapping[str, str], system_passwd_file: Path
) -> list[tuple[Path, bool, bool]]:
    """(path, given explicitly, is the system file) in the order they are tried."""
    if options.passwd_file is not None:
        return [(options.passwd_file, True, options.passwd_file == system_passwd_file)]
    files = []
    home = env.get("HOME", "").strip()
    if home:
        files.append((Path(home) / USER_PASSWD_FILE, False, False))
    files.append((system_passwd_file, False, True))
    return files


def _try_passwd_file(
    path: Path, *, bucket: str, explicit: bool, system: bool
) -> tuple[Credentials | None, str]:
    """Credentials from one passwd file, or None and why not (for the "looked at" list)."""
    try:
        creds = read_passwd_file(path, bucket=bucket, system=system)
    except FileNotFoundError:
        if explicit:
            raise UsageError(f"--passwd-file {path}: no such file") from None
        return None, "missing"
    except OSError as exc:
        if explicit:
            raise UsageError(f"cannot read --passwd-file {path}: {exc.strerror}") from None
        return None, f"cannot read: {exc.strerror}"
    if creds is None:
        return None, f"no line for bucket {bucket} and no ACCESS_KEY_ID:ACCESS_KEY_SECRET line"
    return creds, ""


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
