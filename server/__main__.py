"""Run the `coworking` command as `python -m server`."""

from .cli import main

raise SystemExit(main())
