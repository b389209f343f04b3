"""The one exception the store raises for conditions a user must act on."""

from __future__ import annotations


class StoreError(Exception):
    """A database probe cannot use (unreachable, unknown revision, ...); the message says why."""


class RunLockHeld(StoreError):
    """A named run lock is already held by another, live holder."""

    def __init__(self, name: str, holder: str, heartbeat_at: str) -> None:
        self.name = name
        self.holder = holder
        self.heartbeat_at = heartbeat_at
        super().__init__(
            f"run lock {name!r} is held by {holder} (last heartbeat {heartbeat_at}); "
            "another run is in progress on this database"
        )
