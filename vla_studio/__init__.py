"""VLA Studio: teleoperate robots, record language-labelled demonstrations, supervise VLA policies."""

__version__ = "0.1.0"
