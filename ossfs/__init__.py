"""ossfs: a read-only FUSE filesystem for Alibaba Cloud OSS buckets."""

from __future__ import annotations

__version__ = "0.1.0"
