"""The one exception every export step raises for a problem the user can fix."""


class ExportError(Exception):
    """The export cannot run; the message says what is wrong and how to fix it."""
