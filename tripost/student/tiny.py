"""A tiny random Llama-architecture model with the real SmolLM2 tokenizer.

Unit tests need a model that loads and generates in a fraction of a second yet
tokenises exactly like the real student (same vocabulary, same special tokens,
same chat template), so every code path but the weights is the real one.
"""

from __future__ import annotations

from pathlib import Path
from tripost.student.embedded import embedded_tokenizer_dir


def build_tiny_model(
    path: str | Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    seed: int = 0,
    init_std: float = 0.02,
    tie_embeddings: bool = True,
) -> Path:
    """Write a tiny random model (deterministic in `seed`) and the embedded
    model's tokenizer into `path`; load it with the spec `hf:PATH`.

    At the default init the model mostly repeats the prompt's last token; a
    larger `init_std` with untied embeddings makes its greedy text depend on
    the prompt, which decoding tests need."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_tokenizer_dir()))
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie_embeddings,
        initializer_range=init_std,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    # Seed only a forked RNG: building a test model must not shift the
    # caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=pad)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    return path
