"""Tiny random-weight models in real single-file form, for tests and demos without a hub."""
