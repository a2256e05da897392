"""`python -m ossfs` entry point."""

from __future__ import annotations

from ossfs.app.cli import main

raise SystemExit(main())
