"""prerelease."""
