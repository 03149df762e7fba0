"""Complexity classifier: which tier (trivial, simple, moderate, complex) a prompt needs."""
