"""The embedded wiring: dlib faces, SQLite records and plain files."""
