"""A tiny shop app: only here to own the demo's tasks module."""
