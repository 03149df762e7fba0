"""Training of the cache verifier and its trap sets (offline)."""
