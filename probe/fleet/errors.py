"""Exceptions the fleet's app raises to the code that drives it in-process.

Kept in a module of its own, below both the app (which raises them) and the in-process transport
(which maps them to what a real network would show), so neither has to import the other.
"""

from __future__ import annotations


class FleetReset(ConnectionResetError):
    """Raised out of the app (in-process only) where a real server would reset the connection."""
