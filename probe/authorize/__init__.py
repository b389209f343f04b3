"""`probe authorize`: the SMART patient authorization walked in a real (headless) browser."""
