"""Face engines: each returns Rekognition-shaped records."""
