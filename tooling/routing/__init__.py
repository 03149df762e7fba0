"""Training and evaluation of the learned router (offline)."""
