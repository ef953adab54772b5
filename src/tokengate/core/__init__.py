"""The pure core: rules and formats with no I/O (held to ``mypy --strict`` as a folder)."""
