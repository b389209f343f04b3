"""Test-patient sync: authorization, `$everything`, paging, per-resource fallback, references."""
