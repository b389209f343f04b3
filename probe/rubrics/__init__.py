"""Packaged scoring rubrics (YAML data files), loaded with ``probe.score.load_rubric``.

``state-of-the-payer-2025-05.yaml`` reproduces the May 2025 Flexpa State of the Payer report.
"""
