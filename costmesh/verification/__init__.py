"""The learned cache verifier: pair features, training, the artifact, the operating point.

lexical.py (word-level signals), encoder.py (MiniLM sentence + token embeddings),
features.py (one feature vector per (query, candidate) pair), trees.py (a gradient-boosted
ensemble evaluated with numpy), artifact.py (the committed model + operating-point table),
traps.py (assistant-style trap and paraphrase pairs), train.py (`costmesh train-verifier`).
"""
