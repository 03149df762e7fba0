"""The router's block-hash chain is vLLM's own, and predicts what the real engine serves from its cache."""

from __future__ import annotations

import random

from costmesh.api.inference.v1 import inference_pb2
from costmesh.convert import messages_to_pb
from costmesh.domain import Message, Role
from costmesh.services.providers.prefix_routing.block_hash import BlockHasher
from costmesh.services.providers.prefix_routing.prompt_tokens import ChatTokenizer

from inference_helpers import BLOCK_SIZE, single_token_words


def test_chain_equals_vllm_hash_block_tokens():
    from vllm.utils.hashing import sha256, sha256_cbor
    from vllm.v1.core import kv_cache_utils

    kv_cache_utils.init_none_hash(sha256)  # what the engine of this session did (vLLM's default algorithm)
    ids = random.Random(3).choices(range(30000), k=10 * BLOCK_SIZE + 5)
    expected, parent = [], None
    for start in range(0, 10 * BLOCK_SIZE, BLOCK_SIZE):
        parent = kv_cache_utils.hash_block_tokens(sha256, parent, ids[start : start + BLOCK_SIZE])
        expected.append(bytes(parent))
    assert BlockHasher(BLOCK_SIZE, "sha256").chain(ids) == expected
    # sha256_cbor: the same scheme with canonical CBOR; its NONE_HASH from vLLM's own seed rule.
    seed = kv_cache_utils.resolve_none_hash_seed(sha256_cbor)
    cbor = BlockHasher(BLOCK_SIZE, "sha256_cbor", seed)
    assert cbor.none_hash == sha256_cbor(seed)
    first = kv_cache_utils.hash_block_tokens(sha256_cbor, cbor.none_hash, ids[:BLOCK_SIZE])
    assert cbor.chain(ids)[:2] == [
        first, kv_cache_utils.hash_block_tokens(sha256_cbor, first, ids[BLOCK_SIZE : 2 * BLOCK_SIZE])
    ]


def _chat_request(messages: tuple[Message, ...]) -> inference_pb2.GenerateRequest:
    request = inference_pb2.GenerateRequest(chat=inference_pb2.ChatInput(messages=messages_to_pb(messages)))
    request.sampling.max_tokens = 2
    request.sampling.temperature = 0.0
    return request


async def test_chain_predicts_the_engines_cached_tokens_for_chats(inference):
    tokens = ChatTokenizer.load(inference.model_dir)
    hasher = BlockHasher(BLOCK_SIZE)
    words = single_token_words(inference.tokenizer)
    system, q1, q2 = (" ".join(random.Random(seed).choices(words, k=k)) for seed, k in ((77, 300), (78, 80), (79, 80)))
    first = (Message.of(Role.SYSTEM, system), Message.of(Role.USER, q1))  # questions span full blocks too
    second = (Message.of(Role.SYSTEM, system), Message.of(Role.USER, q2))

    a = await inference.stub.Generate(_chat_request(first))
    b = await inference.stub.Generate(_chat_request(second))

    ids_a, ids_b = tokens(first), tokens(second)
    assert (a.prompt_tokens, b.prompt_tokens) == (len(ids_a), len(ids_b))  # the same tokens the engine rendered
    chain_a, chain_b = hasher.chain(ids_a), hasher.chain(ids_b)
    shared = next(i for i, (x, y) in enumerate(zip(chain_a, chain_b)) if x != y)
    assert 9 <= shared < len(chain_b)  # ~300 shared tokens: 9 full blocks of 32; b has unshared full blocks
    assert a.cached_prompt_tokens == 0
    assert b.cached_prompt_tokens == shared * BLOCK_SIZE  # exactly the blocks the chains share
