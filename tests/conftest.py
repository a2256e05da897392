"""Shared fixtures: a started emulator with the test bucket and credentials, and an oss2 Bucket."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import oss2
import pytest
from hypothesis import settings

from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET

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
