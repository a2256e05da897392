"""`python -m ossfs` entry point."""

from __future__ import annotations

from ossfs.cli import main

raise SystemExit(main())
