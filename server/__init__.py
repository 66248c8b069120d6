"""Self-hosted video coworking server: HTTP app, storage, invites and CLI."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
