"""Checks: each has a stable id, a title, a severity and the spec requirement it verifies."""
