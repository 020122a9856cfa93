"""``genre web``: the "discover your sound" page and its JSON API, on the registered champion."""

from genre.web.app import (
    ACCEPTED_SUFFIXES,
    MAX_UPLOAD_BYTES,
    STATIC_DIR,
    TITLES,
    Backend,
    EndpointBackend,
    LocalBackend,
    create_app,
    list_versions,
    load_backend,
    serve,
)

__all__ = [
    "ACCEPTED_SUFFIXES",
    "MAX_UPLOAD_BYTES",
    "STATIC_DIR",
    "TITLES",
    "Backend",
    "EndpointBackend",
    "LocalBackend",
    "create_app",
    "list_versions",
    "load_backend",
    "serve",
]
