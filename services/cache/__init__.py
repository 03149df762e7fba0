"""Semantic cache service: an exact tier in front of a verified vector search on Redis.

scope.py (scope key, normalisation), exact.py / semantic.py (the two ways into one Redis hash
per entry), verifier.py, policy.py (what is cacheable), guard.py (fail-open), stats.py,
core.py (CacheCore, no gRPC), servicer.py (protobuf <-> domain), service.py (SPEC).
"""
