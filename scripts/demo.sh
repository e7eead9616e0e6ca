#!/usr/bin/env bash
# The main job on the embedded default: `tripost run` with the embedded
# SmolLM2-135M student and the scripted teacher on the `small` arithmetic
# preset, offline, on a CPU-only machine (measured time: docs/demo.md).
#
# Training uses the setup tripost picks for the device (printed at each train
# stage): on a CPU, full fine-tuning of the 135M student in fp32 (bf16 autocast
# where the CPU has bf16 matrix units) on packed rows; on a GPU, QLoRA. Sizes
# are small so the whole loop (iteration 0 gold SFT + one TriPosT iteration)
# fits the time budget; the numbers it prints are a smoke check, not a result
# (see scripts/bench_learning.py for that).
#
# The per-iteration generation-verification gap (gap.enabled, on by default)
# is off here to keep the measured time; `tripost gap` measures it on its own
# (docs/gap.md).
#
# Re-running resumes: finished stages are skipped. OUT=DIR picks the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
OUT=${OUT:-runs/demo}

.venv/bin/tripost run --out "$OUT" \
    student.spec=smollm2-135m teacher.spec=scripted \
    'tasks.families=["arithmetic"]' tasks.preset=small tasks.n_train=32 tasks.n_eval=8 \
    loop.iterations=1 \
    collect.samples_per_problem=1 collect.max_new_tokens=160 \
    train.epochs=2 train.batch_size=4 \
    eval.max_turns=1 eval.max_new_tokens=160 gap.enabled=false

echo
echo "report: $OUT/report.md (plots in $OUT/plots/)"
