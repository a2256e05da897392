"""What the environment says about reaching a server over HTTP, by requests' rules.

Responsibility: the proxies for a URL (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, exempted
by ``NO_PROXY``, as requests reads them) and the CA bundle TLS trusts (``REQUESTS_CA_BUNDLE``,
else ``CURL_CA_BUNDLE``, else certifi's): what oss2, sending through requests, would use. ossfs
reaches OSS the same way.

It deliberately does not decide when to read them: the app layer does, once at start-up, and
passes the results down as configuration (the store and the transport read no environment).
"""

from __future__ import annotations

from collections.abc import Mapping

import certifi
import requests.utils

__all__ = ["default_ca_bundle", "environ_ca_bundle", "environ_proxies"]


def environ_proxies(url: str) -> dict[str, str]:
    """The proxies (URL scheme, or ``all``/``no``, -> value) the process environment names for
    ``url`` by requests' rules; ``{}`` when ``NO_PROXY`` exempts its host. Reads the process
    environment (and only it): for the app layer."""
    return dict(requests.utils.get_environ_proxies(url))


def environ_ca_bundle(environ: Mapping[str, str]) -> str | None:
    """The CA bundle ``environ`` names: ``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``, else
    None."""
    return environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE") or None


def default_ca_bundle() -> str:
    """certifi's CA bundle (the one requests trusts when nothing else is named)."""
    return certifi.where()
