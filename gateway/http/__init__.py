"""The gateway's OpenAI-compatible HTTP API."""
