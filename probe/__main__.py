"""`python -m probe`: the `probe` command."""

from probe.cli.app import main

main()
