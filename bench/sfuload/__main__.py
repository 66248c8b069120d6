"""Entry point: ``python -m bench.sfuload --help``."""

from .orchestrator import main

main()
