"""Constants shared by the test suite (the emulator's test credentials and bucket)."""

from __future__ import annotations

from typing import Final

ACCESS_KEY_ID: Final = "LTAI5tTestAccessKey"
ACCESS_KEY_SECRET: Final = "TestSecretKey0123456789"
BUCKET: Final = "test-bucket"
