"""covage-pipeline: the Covage (Kosc) events feed, kept in step in your warehouse."""

__version__ = "0.1.0"
