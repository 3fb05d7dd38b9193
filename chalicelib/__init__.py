"""Faceprint: face index and search behind one Chalice app."""

__version__ = "0.1.0"
