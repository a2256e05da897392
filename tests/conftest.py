"""Shared fixtures (a started emulator with the test bucket and credentials, an oss2 Bucket) and
the ``mount`` marker's rules: a marked test is skipped only where FUSE is absent (with the
reason), and a test using a mount fixture without the marker is a usage error
(`tests.support.fuse`). Shared helpers that are not fixtures live in `tests.support`."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import oss2
import pytest
from hypothesis import settings

from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, fuse

for _name in ("NO_PROXY", "no_proxy"):
    _current = os.environ.get(_name, "")
    _hosts = [h for h in _current.split(",") if h]
    for _host in ("127.0.0.1", "localhost"):
        if _host not in _hosts:
            _hosts.append(_host)
    os.environ[_name] = ",".join(_hosts)

# Two cores shared with real mounts and servers: a per-example deadline only measures the load.
settings.register_profile("ossfs", deadline=None)
settings.load_profile("ossfs")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = fuse.unmarked_mount_tests(items)
    if unmarked:
        raise pytest.UsageError(
            "these tests use a mount fixture but are not marked @pytest.mark.mount "
            f"(see tests/support/fuse.py): {', '.join(unmarked)}"
        )
    reason = fuse.fuse_missing_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if fuse.is_mount_test(item):
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """Tell `tests.support.fuse` which test runs (setup, call and teardown), so that a shared
    helper that mounts can fail a test without the ``mount`` marker."""
    fuse.set_current_test(item)
    try:
        return (yield)
    finally:
        fuse.set_current_test(None)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    """A running emulator on 127.0.0.1:<free port> with bucket BUCKET and the test credentials."""
    config = EmulatorConfig(
        data_dir=tmp_path / "emulator-data",
        buckets=(BUCKET,),
        credentials=(Credential(ACCESS_KEY_ID, ACCESS_KEY_SECRET),),
        anonymous=False,
        restore_delay_s=0.5,
    )
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
def oss_bucket(emulator: EmulatorServer) -> oss2.Bucket:
    """An oss2 Bucket signed with the test credentials, talking to the emulator."""
    return oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), emulator.endpoint, BUCKET)
