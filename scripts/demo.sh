#!/usr/bin/env bash
# The main job on the embedded default, on a fresh CPU-only machine, offline.
#
# What is built so far: the four task families with step checkers, the
# scripted teacher, and the embedded SmolLM2-135M student. The demo samples
# problems, lets the student attempt them, and has the scripted teacher find
# the first wrong step and write the fix. (Once the training loop lands, this
# runs `tripost run` on the embedded default.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
OUT=${OUT:-runs/demo}
mkdir -p "$OUT"
T=.venv/bin/tripost

echo "== task families"
$T tasks list

echo
echo "== a gold rationale per family (small preset, train split)"
for fam in arithmetic word_sorting date_understanding logical_deduction; do
    $T tasks sample "$fam" --n 1 --seed 0 --json > "$OUT/$fam.sample.jsonl"
    .venv/bin/python - "$OUT/$fam.sample.jsonl" <<'PY'
import json, sys
p = json.loads(open(sys.argv[1]).readline())
print(f"--- {p['family']} [{p['difficulty']}]\nQ: {p['question']}\n{p['rationale']}\n")
PY
done

echo "== the embedded student attempts 16 arithmetic problems (greedy), the scripted teacher checks them"
$T sample --student smollm2-135m --task arithmetic --split val --n 16 --samples 1 --json > "$OUT/attempts.jsonl"
tail -n 1 "$OUT/attempts.jsonl"

echo
echo "== the scripted teacher's feedback and fix for the student's attempts"
.venv/bin/python - "$OUT/attempts.jsonl" "$OUT/arithmetic.val.jsonl" <<'PY'
import json, sys
from tripost.tasks import get_task, sample_problems
rows = [json.loads(l) for l in open(sys.argv[1]) if '"problem_id"' in l]
problems = {p.id: p for p in sample_problems(get_task("arithmetic"), split="val", n=16, seed=0)}
with open(sys.argv[2], "w") as f:
    for r in rows:
        p = problems.get(r["problem_id"])
        if p is not None:
            f.write(json.dumps({**p.to_dict(), "attempt": r["text"]}) + "\n")
PY
$T teach --teacher scripted --task arithmetic "$OUT/arithmetic.val.jsonl" > "$OUT/teach.jsonl"
.venv/bin/python - "$OUT/arithmetic.val.jsonl" "$OUT/teach.jsonl" <<'PY'
import json, sys
attempts = [json.loads(l) for l in open(sys.argv[1])]
taught = [json.loads(l) for l in open(sys.argv[2])]
shown = 0
for a, t in zip(attempts, taught):
    if t["improved"] and shown < 2:
        shown += 1
        print(f"Q: {a['question']}\n--- student attempt\n{a['attempt']}\nFeedback: {t['feedback']}\nUpdated Answer: {t['improved']}\n")
print(f"{sum(1 for t in taught if t['correct'])}/{len(taught)} attempts fully correct; the rest got feedback and a fix.")
PY
echo
echo "demo outputs are in $OUT/"
