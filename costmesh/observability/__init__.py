"""Logs and traces, set up the same way for every service."""
