"""probe's machine-readable output contracts: JSON Schemas of the JSON outputs, and SARIF."""
