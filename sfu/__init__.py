"""Selective forwarding unit: passes encoded media between aiortc peers."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
