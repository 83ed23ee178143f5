"""Example VLA Studio plugin (see README.md)."""
