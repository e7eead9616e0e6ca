"""Training the student on a replay buffer: weighted SFT (TriPosT) and DPO.

    from tripost.train import TrainConfig, train_sft, load_buffer_dataset
    result = train_sft(TrainConfig(student="smollm2-135m", epochs=1), load_buffer_dataset("runs/x/it1/buffer"), "out/")

Modules, one job each:

    config       TrainConfig, file names, the trackers `report_to` takes
    setup        what a run trains with on this device (`resolve_setup`), the student loaded for it
    data         tokenisation with loss weights, collators (padded, packed), the length-bucketed sampler
    loss         the weighted causal-LM loss, packed attention, the fused head loss
    checkpoints  whole-or-absent checkpoints and resuming, `is_trained`
    card         a trained folder that loads anywhere: metadata, portable base name, model card
    trainer      the Trainer subclass and `train_sft` (imports torch and transformers)
    objectives/  `train.objective` by name: sft, dpo (a registry; docs/design.md says how to add one)

The method is told where its code is: TriPosT's weighted loss and packing in
tripost/train/loss.py, what is trained and how in tripost/train/setup.py, the
trainer in tripost/train/trainer.py, the output folder in tripost/train/card.py,
checkpoints in tripost/train/checkpoints.py. Importing tripost.train
does not import torch: the trainer's names load on first use.
"""

from __future__ import annotations

from typing import Any

from tripost.train.config import (  # noqa: F401
    CONFIG_FILE,
    METRICS_FILE,
    CHECKPOINTS,
    STAGING_DIR,
    MODES,
    DPO_REFERENCES,
    DPO_LEARNING_RATES,
    FULL_MEMORY_SHARE,
    PRECISIONS,
    MIXED,
    ACTIVATION_MEMORY_SHARE,
    COMPILE_MIN_TOKENS,
    REPORTERS,
    LOGS,
    TrainConfig,
    report_targets,
    is_main_process,
)
from tripost.train.setup import (  # noqa: F401
    TrainSetup,
    activation_bytes_per_token,
    student_parameters,
    available_memory_bytes,
    resolve_setup,
    enable_checkpointing,
    sparse_tied_embedding_grad,
    load_for_training,
)
from tripost.train.data import (  # noqa: F401
    TokenizedExample,
    feedback_offset,
    tokenize_example,
    prepare_dataset,
    WeightedCollator,
    PackedCollator,
    LengthBucketSampler,
    load_buffer_dataset,
)
from tripost.train.loss import (  # noqa: F401
    PACKED_ATTENTION,
    MATMUL_ATTENTION_MAX_TOKENS,
    matmul_causal_attention,
    packed_attention,
    use_packed_attention,
    weighted_ce_sum,
    weighted_causal_lm_loss,
    accepts_logits_to_keep,
    forward_weighted,
)
from tripost.train.checkpoints import (  # noqa: F401
    checkpoint_problem,
    find_checkpoint,
    promote_checkpoint,
    last_checkpoint,
    is_trained,
)
from tripost.train.card import (  # noqa: F401
    finish_folder,
    EMBEDDED_HUB_ID,
    CARD_FILE,
    base_model_info,
    make_portable,
    model_card,
)
from tripost.train.objectives import OBJECTIVES  # noqa: F401

# The trainer's names, imported on first use (PEP 562): the trainer imports torch and transformers.
_LAZY = {name: "tripost.train.trainer" for name in ('WeightedSFTTrainer', 'trainer_class', 'TrainResult', 'build_trainer', 'PreparedRun', 'prepare_run', 'train_sft')}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tripost.train' has no attribute {name!r}")


__all__ = sorted([
    'CONFIG_FILE', 'METRICS_FILE', 'CHECKPOINTS', 'STAGING_DIR', 'MODES', 'DPO_REFERENCES', 'DPO_LEARNING_RATES',
    'FULL_MEMORY_SHARE', 'PRECISIONS', 'MIXED', 'ACTIVATION_MEMORY_SHARE', 'COMPILE_MIN_TOKENS', 'REPORTERS', 'LOGS',
    'TrainConfig', 'report_targets', 'is_main_process', 'TrainSetup', 'activation_bytes_per_token',
    'student_parameters', 'available_memory_bytes', 'resolve_setup', 'enable_checkpointing',
    'sparse_tied_embedding_grad', 'load_for_training', 'TokenizedExample', 'feedback_offset', 'tokenize_example',
    'prepare_dataset', 'WeightedCollator', 'PackedCollator', 'LengthBucketSampler', 'load_buffer_dataset',
    'PACKED_ATTENTION', 'MATMUL_ATTENTION_MAX_TOKENS', 'matmul_causal_attention', 'packed_attention', 'use_packed_attention', 'weighted_ce_sum', 'weighted_causal_lm_loss',
    'accepts_logits_to_keep', 'forward_weighted', 'checkpoint_problem', 'find_checkpoint', 'promote_checkpoint',
    'last_checkpoint', 'is_trained', 'finish_folder', 'EMBEDDED_HUB_ID', 'CARD_FILE', 'base_model_info',
    'make_portable', 'model_card', "OBJECTIVES", *_LAZY,
])
