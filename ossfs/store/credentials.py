"""The keys requests are signed with: a value that never shows its secrets.

Where keys come from (environment, ossutil config, passwd files) is the app layer's job
(`ossfs.app.credentials`); the store only signs with what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __repr__(self) -> str:  # never show secrets, even in a debugger or a log line
        token = ", security_token=***" if self.security_token is not None else ""
        return f"Credentials(access_key_id={self.access_key_id!r}, access_key_secret=***{token})"
