"""headshot: disclosed AI headshots that look like the person."""

__version__ = "0.1.0"
