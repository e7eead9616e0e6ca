#!/usr/bin/env bash
# The main job on the embedded default: `tripost run` with the embedded
# SmolLM2-135M student and the scripted teacher on the `small` arithmetic
# preset, offline, on a CPU-only machine (measured time: docs/demo.md).
#
# Training uses the setup tripost picks for the device (printed at each train
# stage): on a CPU, full fine-tuning of the 135M student in fp32 (bf16 autocast
# where the CPU has bf16 matrix units) on packed rows; on a GPU, QLoRA. The
# sizes let the whole loop (iteration 0 gold SFT + one TriPosT iteration)
# fit the time budget (docs/demo.md); what it can and cannot show is printed
# at the end.
#
# The per-iteration generation-verification gap (gap.enabled, on by default)
# is off here to keep the measured time; `tripost gap` measures it on its own
# (docs/gap.md).
#
# Re-running resumes: finished stages are skipped. OUT=DIR picks the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-runs/demo}

# Sizes (issue 28, measured in docs/demo.md): iteration 0 learns the format
# from 320 gold rationales (1 epoch); 100 held-out `seen` problems are enough
# for base -> iteration 0 intervals that do not overlap (base is right on
# ~3% of them, iteration 0 on ~15%); one TriPosT iteration collects until it
# has 80 usable trajectories, and the evaluation allows two self-improvement
# turns, so its revision and fix rates are measured, on too few problems to
# compare it with a control (the learning campaign does that).
.venv/bin/tripost run --out "$OUT" \
    student.spec=smollm2-135m teacher.spec=scripted student.eval_base=true \
    'tasks.families=["arithmetic"]' tasks.preset=small tasks.n_train=320 \
    'tasks.eval_subsets=["seen"]' tasks.n_eval=100 \
    loop.iterations=1 loop.iteration0_epochs=1 \
    collect.samples_per_problem=1 collect.max_new_tokens=160 collect.target_usable=80 \
    train.epochs=1 \
    eval.max_turns=2 eval.max_new_tokens=160 gap.enabled=false

echo
sed -n '/^## Accuracy/,/^Intervals are/p' "$OUT/report.md"
cat <<EOF

What these sizes can show: base -> iteration 0 on 100 held-out problems, with
95% intervals that do not overlap when the gold SFT worked, and whether the
student revises its own answers after one TriPosT iteration (revised, fixed
wrong, broke right). What they cannot show: that TriPosT beats more gold data
(sft-gold+) or the other controls; that takes hundreds of problems per cell
and hours of training: docs/benchmarks/learning.md (the learning campaign).
report: $OUT/report.md (plots in $OUT/plots/)
EOF
