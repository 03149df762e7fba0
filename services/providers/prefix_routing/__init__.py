"""Prefix-aware routing over inference replicas: vLLM's block-hash chain, a per-replica LRU trie of
served prefixes, longest match unless that replica is saturated, health-checked replicas."""
