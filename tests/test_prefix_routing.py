"""Prefix-aware routing: block-hash chains, the per-replica LRU trie, the picker's choices, its settings."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from costmesh import errors
from costmesh.config import Env
from costmesh.services.providers.prefix_routing.block_hash import DEFAULT_NONE_HASH_SEED, BlockHasher
from costmesh.services.providers.prefix_routing.factory import build_picker
from costmesh.services.providers.prefix_routing.router import PrefixAwarePicker
from costmesh.services.providers.prefix_routing.settings import RoutingSettings
from costmesh.services.providers.prefix_routing.trie import PrefixTrie
from costmesh.services.providers.replica_picker import RoundRobinPicker

BS = 4


def tokens(prefix: int, n: int, tail: int = 0) -> list[int]:
    """`n` tokens of prefix family `prefix`, then `tail` tokens distinct per tail id."""
    return [prefix * 1000 + i for i in range(n)] + [-(tail + 1)] * (3 if tail else 0)


def test_chain_hashes_full_blocks_with_parent_as_vllm_does():
    hasher = BlockHasher(BS)
    chain = hasher.chain(list(range(10)))
    assert len(chain) == 2  # the partial third block is not hashed
    none_hash = hashlib.sha256(pickle.dumps(DEFAULT_NONE_HASH_SEED, protocol=pickle.HIGHEST_PROTOCOL)).digest()
    first = hashlib.sha256(pickle.dumps((none_hash, (0, 1, 2, 3), None), protocol=pickle.HIGHEST_PROTOCOL)).digest()
    second = hashlib.sha256(pickle.dumps((first, (4, 5, 6, 7), None), protocol=pickle.HIGHEST_PROTOCOL)).digest()
    assert chain == [first, second]
    # Same block content after a different prefix: a different hash (the chain names the whole prefix).
    assert BlockHasher(BS).chain([9, 9, 9, 9, 4, 5, 6, 7])[1] != second
    assert BlockHasher(BS, seed="other").chain(list(range(4))) != chain[:1]
    with pytest.raises(errors.ConfigError, match="COSTMESH_INFERENCE_HASH_ALGO"):
        BlockHasher(BS, "md5")


def test_trie_matches_longest_recorded_prefix():
    hasher = BlockHasher(BS)
    trie = PrefixTrie(max_blocks=100)
    a = hasher.chain(tokens(1, 40))
    trie.insert(a[:6])
    assert trie.match(a) == 6
    assert trie.match(a[:3]) == 3
    assert trie.match(hasher.chain(tokens(2, 40))) == 0
    trie.insert(a)
    assert trie.match(a) == 10 and len(trie) == 10


def test_trie_memory_is_bounded_and_evicts_least_recently_used_leaves():
    hasher = BlockHasher(BS)
    trie = PrefixTrie(max_blocks=12)
    a, b, c = (hasher.chain(tokens(p, 24)) for p in (1, 2, 3))  # 6 blocks each
    trie.insert(a)
    trie.insert(b)
    assert len(trie) == 12 and trie.evictions == 0
    trie.match(a)  # matching alone does not refresh; routing refreshes by inserting the chosen chain
    trie.insert(a)  # a is now more recent than b
    trie.insert(c)
    assert len(trie) == 12 and trie.evictions == 6
    assert trie.match(a) == 6 and trie.match(c) == 6
    assert trie.match(b) == 0  # b, least recently used, went whole
    # Eviction takes leaves first: 4 new blocks trim a (now least recently used) from its tail.
    trie.insert(hasher.chain(tokens(4, 4 * BS)))
    assert len(trie) == 12
    assert trie.match(a) == 2  # a's 4 deepest blocks went, its root side stayed
    for block in a[:2]:
        assert block in trie
    assert trie.children(a[1]) == 0 and trie.children(a[0]) == 1
    # A chain longer than the bound keeps its leading blocks.
    trie.insert(hasher.chain(tokens(5, 20 * BS)))
    assert len(trie) == 12 and trie.match(hasher.chain(tokens(5, 20 * BS))) == 12


def picker(max_in_flight: int = 2, replicas=("r0", "r1", "r2")) -> PrefixAwarePicker:
    return PrefixAwarePicker(list(replicas), lambda ids: ids, BlockHasher(BS), max_blocks=1000,
                             max_in_flight=max_in_flight)


def test_repeated_prefix_goes_to_the_replica_that_served_it():
    p = picker()
    first = {k: p.choose(tokens(k, 32, tail=0)) for k in range(3)}
    for choice in first.values():
        p.done(choice.replica)
        assert choice.reason == "least_loaded" and choice.matched_blocks == 0
    assert sorted(c.replica for c in first.values()) == ["r0", "r1", "r2"]  # new prefixes spread
    # Tied in load, a new prefix goes where fewer blocks are remembered (less cache pressure).
    crowded = first[0].replica
    p.tries[crowded].insert(BlockHasher(BS).chain(tokens(50, 64)))
    for k in (51, 52, 53, 54):
        fresh = p.choose(tokens(k, 32))
        p.done(fresh.replica)
        assert fresh.replica != crowded and fresh.reason == "least_loaded"
    for question in range(1, 5):
        for k in range(3):
            again = p.choose(tokens(k, 32, tail=question))
            p.done(again.replica)
            assert (again.replica, again.reason) == (first[k].replica, "prefix")
            assert again.matched_blocks == 8


def test_saturated_replica_spills_to_the_least_loaded():
    p = picker(max_in_flight=2)
    home = p.choose(tokens(7, 32)).replica
    p.done(home)
    held = [p.choose(tokens(7, 32, tail=i)) for i in (1, 2)]  # two in flight on home: saturated
    assert [c.replica for c in held] == [home, home]
    other = p.choose(tokens(8, 32))  # a new prefix goes to an idle replica
    spilled = p.choose(tokens(7, 32, tail=3))
    assert spilled.reason == "spill" and spilled.replica not in (home, other.replica)
    assert spilled.best_blocks == 8 and spilled.matched_blocks == 0
    p.done(held[0].replica)  # home has room again
    back = p.choose(tokens(7, 32, tail=4))
    assert (back.replica, back.reason) == (home, "prefix")


def test_dead_replica_is_skipped_and_brought_back():
    p = picker()
    home = p.choose(tokens(3, 32)).replica
    p.done(home)
    p.health.set_up(home, False)
    elsewhere = p.choose(tokens(3, 32, tail=1))
    p.done(elsewhere.replica)
    assert elsewhere.replica != home and elsewhere.reason == "least_loaded"
    p.health.set_up(home, True)
    # Both now hold the prefix; the longest match ties, the least loaded of them wins.
    assert p.choose(tokens(3, 32, tail=2)).replica in (home, elsewhere.replica)
    for replica in p.replicas:
        p.health.set_up(replica, False)
    with pytest.raises(errors.Unavailable, match="no healthy inference replica"):
        p.choose(tokens(3, 32))


def test_routing_settings_from_env():
    assert RoutingSettings.load(Env({})).mode == "round_robin"
    s = RoutingSettings.load(Env({
        "COSTMESH_INFERENCE_TOKENIZER": "/models/x", "COSTMESH_INFERENCE_BLOCK_SIZE": "32",
        "COSTMESH_INFERENCE_MAX_IN_FLIGHT": "3", "PYTHONHASHSEED": "7",
    }))
    assert (s.mode, s.tokenizer, s.block_size, s.max_in_flight, s.hash_seed) == ("prefix", "/models/x", 32, 3, "7")
    for env, field in (
        ({"COSTMESH_INFERENCE_ROUTING": "prefix"}, "COSTMESH_INFERENCE_TOKENIZER"),
        ({"COSTMESH_INFERENCE_ROUTING": "random"}, "COSTMESH_INFERENCE_ROUTING"),
        ({"COSTMESH_INFERENCE_BLOCK_SIZE": "0"}, "COSTMESH_INFERENCE_BLOCK_SIZE"),
        ({"COSTMESH_INFERENCE_HASH_ALGO": "md5"}, "COSTMESH_INFERENCE_HASH_ALGO"),
        ({"COSTMESH_INFERENCE_PREFIX_MAX_BLOCKS": "-1"}, "COSTMESH_INFERENCE_PREFIX_MAX_BLOCKS"),
    ):
        with pytest.raises(errors.ConfigError, match=field):
            RoutingSettings.load(Env(env))
    assert isinstance(build_picker(["a:1"], RoutingSettings()), RoundRobinPicker)
    with pytest.raises(errors.ConfigError, match="COSTMESH_INFERENCE_TOKENIZER"):
        build_picker(["a:1"], RoutingSettings(routing="prefix", tokenizer="/does/not/exist"))
