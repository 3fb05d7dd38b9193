"""The HTTP edge: request parsing, middleware, replies, the console and
the OpenAPI document. app.py declares the routes over it."""
