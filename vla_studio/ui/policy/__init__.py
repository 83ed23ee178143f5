"""The Policy dock, its camera overlays and its live plot (issue 12: supervised policy runs)."""
