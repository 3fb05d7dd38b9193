"""The core: use cases, ports, records, errors and limits. Nothing here
knows HTTP, boto3, dlib or SQLite."""
