"""photocull: cull a photo shoot with NIMA score distributions."""

__version__ = "0.1.0"
