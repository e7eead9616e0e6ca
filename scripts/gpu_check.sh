#!/usr/bin/env bash
# The one prepared GPU check: the tests that exercise tripost's device paths
# (sampling and scoring in bf16 on the continuous engine, packed and padded
# training with bf16 autocast, QLoRA nf4 through bitsandbytes, DPO,
# log-probabilities, every auto decision on a real CUDA device) on the tiny
# model, then a short timing table. Writes OUT/gpu-check.md (and .json).
#
# The GPU machine this project borrows has torch, transformers, peft,
# accelerate, pyarrow, safetensors and tokenizers, but no package index and
# none of bitsandbytes, trl, datasets, tenacity, openai, anthropic, gguf; and
# the embedded student (98 MB) does not fit the 64 MiB a call carries. So it
# is prepared here, in two steps:
#
#   1. On a machine with the package index (this project's CPU machine):
#        bash scripts/gpu_check.sh --prepare [PYTHON_VERSION]
#      downloads the missing wheels for the GPU's Python (default: this
#      one's; check with `python3 -V` there) and builds the tiny model (the
#      real SmolLM2 tokenizer, random weights) into .gpu-check/ (git-ignored),
#      in two parts that each fit a 64 MiB call with this repository:
#      part1/ holds bitsandbytes 0.50.2 (a 43 MB manylinux wheel), part2/ the
#      rest (trl, datasets with pandas, tenacity, gguf, ...; ~20 MB) and the
#      tiny model. What the GPU image already has (torch, transformers and
#      their dependencies) is not carried.
#   2. On the GPU machine, two calls of the device tool, the second within
#      the 30 s a warm machine keeps what the first installed:
#        carry [".gpu-check/part1"]:  bash scripts/gpu_check.sh --install
#        carry [".gpu-check/part2"]:  bash scripts/gpu_check.sh "$OUT"
#      Each installs the wheels it finds (--no-index, --no-deps) into
#      .gpu-check/venv, which sees the machine's own torch
#      (--system-site-packages); the second runs the check and writes
#      OUT/gpu-check.md: commit it as docs/benchmarks/gpu-check.md.
#
# GPU_CHECK_ALLOW_CPU=1 runs step 2 on a CPU (to test this script; the
# results then say "cpu" and are not a GPU check), GPU_CHECK_PYTHON names an
# interpreter that has everything (nothing is installed), GPU_CHECK_TESTS
# replaces the list of test files:
#   GPU_CHECK_ALLOW_CPU=1 GPU_CHECK_PYTHON=.venv/bin/python bash scripts/gpu_check.sh /tmp/gpu-check
set -euo pipefail
cd "$(dirname "$0")/.."
PREP=.gpu-check
WHEELS=(bitsandbytes==0.50.2 trl datasets tenacity gguf)  # what the GPU image lacks and the device paths need

# What the GPU image has already (torch, transformers, their dependencies):
# not carried, so that each part fits a call.
PRESENT=(torch nvidia_ triton transformers tokenizers safetensors huggingface_hub hf_xet accelerate peft pyarrow numpy sympy
         mpmath networkx jinja2 markupsafe setuptools regex pyyaml requests certifi charset_normalizer idna urllib3 tqdm
         packaging filelock fsspec typing_extensions typer click rich shellingham markdown_it_py mdurl pygments annotated_doc)

if [ "${1:-}" = "--prepare" ]; then
    pyver="${2:-$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}"
    rm -rf "$PREP/part1" "$PREP/part2" && mkdir -p "$PREP/part1" "$PREP/part2/wheels"
    echo "gpu_check: wheels for Python $pyver into $PREP/part1 and $PREP/part2" >&2
    python3 -m pip download -q -d "$PREP/part2/wheels" --only-binary=:all: --python-version "$pyver" \
        --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform any "${WHEELS[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
    for name in "${PRESENT[@]}"; do rm -f "$PREP/part2/wheels/$name"-*.whl; done
    mv "$PREP"/part2/wheels/bitsandbytes-*.whl "$PREP/part1/"
    bash scripts/setup.sh
    HF_HUB_OFFLINE=1 .venv/bin/python -c "from tripost.student.tiny import build_tiny_model; build_tiny_model('$PREP/part2/tiny')"
    du -sh "$PREP/part1" "$PREP/part2" >&2
    echo "gpu_check: prepared; on the GPU machine: carry $PREP/part1, run 'bash scripts/gpu_check.sh --install'; then carry $PREP/part2, run 'bash scripts/gpu_check.sh \"\$OUT\"'" >&2
    exit 0
fi

if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
    PY="$GPU_CHECK_PYTHON"  # an interpreter that has everything already (testing this script on a CPU): install nothing
    WHEEL_PARTS=()
else
    [ -x "$PREP/venv/bin/python" ] || python3 -m venv --system-site-packages "$PREP/venv"
    PY="$PREP/venv/bin/python"
    WHEEL_PARTS=("$PREP/part1" "$PREP/part2/wheels")
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored: it is neither" >&2 || true
fi
for part in "${WHEEL_PARTS[@]}"; do
    if compgen -G "$part/*.whl" > /dev/null; then
        "$PY" -m pip install -q --no-index --no-deps "$part"/*.whl 2>&1 | grep -v "is ignored: it is neither" >&2 || true
    fi
done
if [ "${1:-}" = "--install" ]; then
    "$PY" -c "import importlib.util as u; print('gpu_check: installed:', ', '.join(m for m in ('bitsandbytes', 'trl', 'datasets', 'tenacity', 'gguf', 'tripost') if u.find_spec(m)))"
    exit 0
fi

OUT="${1:-runs/gpu-check}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export TRIPOST_HOME="$PWD/$PREP/home" TRIPOST_TINY_MODEL="$PWD/$PREP/part2/tiny"
[ -d "$TRIPOST_TINY_MODEL" ] || { echo "gpu_check: $TRIPOST_TINY_MODEL is missing; run scripts/gpu_check.sh --prepare where pip reaches an index, and carry $PREP/part2" >&2; exit 2; }

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    if [ "${GPU_CHECK_ALLOW_CPU:-}" != "1" ]; then
        echo "gpu_check: torch sees no CUDA device here (GPU_CHECK_ALLOW_CPU=1 to test this script on a CPU)" >&2
        exit 2
    fi
fi

# The tests whose code takes another path on a CUDA device: they load the
# tiny model with device None (CUDA when available), so on a GPU they run
# there. Modules that need the embedded 98 MB student are left out.
read -r -a TESTS <<< "${GPU_CHECK_TESTS:-tests/test_hardware.py tests/test_engine.py tests/test_student.py tests/test_train.py tests/test_dpo.py}"
set +e
"$PY" -m pytest -q -p no:cacheprovider --junitxml="$OUT/gpu-check-junit.xml" "${TESTS[@]}" -k "not embedded and not gguf" \
    > "$OUT/gpu-check-pytest.txt" 2>&1
rc=$?
set -e
tail -n 25 "$OUT/gpu-check-pytest.txt" >&2

# The timing table: the tiny model is too small to say anything about the
# student's speed, so this is the embedded-size architecture with random
# weights (SmolLM2-135M's config), built on the device.
"$PY" scripts/gpu_timings.py --out "$OUT/gpu-check.json" --pytest-rc "$rc" --pytest-log "$OUT/gpu-check-pytest.txt" --md "$OUT/gpu-check.md"
exit "$rc"
