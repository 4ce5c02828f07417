#!/usr/bin/env bash
# Idempotent setup of .venv/ with the pinned OpenMMLab stack (see README "Setup").
#
# - torch/torchvision come from the package registry (standard builds), never from a local
#   find-links file: this machine's pip configuration prefers a CPU-only torch file that has no
#   working torchvision, so pip's configuration files and find-links are switched off here.
# - mmcv 2.0.1 is built from the sdist with its compiled ops (-std=c++17 instead of the c++14 its
#   setup.py asks for) once per (mmcv, torch, python, cuda) and cached outside the repo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
CACHE="${MMATTNVIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmattnvis}"
TORCH_VER=2.13.0
TV_VER=0.28.0
MMCV_VER=2.0.1
STAMP="$VENV/.mmattnvis-setup-ok"
# Changing this list invalidates the stamp, so the venv is brought up to date.
REQ_HASH=$(cat "$ROOT/setup.py" "$0" "$ROOT/requirements/constraints.txt" | sha1sum | cut -c1-12)

log() { printf '[setup] %s\n' "$*"; }
t0=$(date +%s)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQ_HASH" ]] \
   && "$VENV/bin/python" -c "import mmattnvis, mmcv.ops, torchvision, mmdet, mmyolo" 2>/dev/null; then
  log "environment up to date (.venv)"
  exit 0
fi

# Registry only: no config files, no local find-links.
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_NO_INDEX
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
export UV_NO_CONFIG=1 UV_LINK_MODE="${UV_LINK_MODE:-hardlink}" UV_CACHE_DIR="$CACHE/uv"
mkdir -p "$CACHE"

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
# uv installs from its cache by hard links: a second clone sets up in seconds, not minutes.
if ! "$VENV/bin/uv" --version >/dev/null 2>&1; then
  "$VPY" -m pip install -q "uv>=0.4"
fi
UV=("$VENV/bin/uv" pip install --python "$VPY" -c "$ROOT/requirements/constraints.txt")

log "torch==$TORCH_VER torchvision==$TV_VER (registry builds)"
"${UV[@]}" -q "torch==$TORCH_VER" "torchvision==$TV_VER" "setuptools<81" wheel ninja numpy

PYTAG=$("$VPY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
CUDA_TAG=cpu
if "$VPY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
   && command -v nvcc >/dev/null; then
  CUDA_TAG="cu$("$VPY" -c 'import torch; print(torch.version.cuda.replace(".",""))')"
  export FORCE_CUDA=1
fi
WHEEL_DIR="$CACHE/wheels/mmcv$MMCV_VER-torch$TORCH_VER-$PYTAG-$CUDA_TAG"
if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  log "building mmcv==$MMCV_VER with ops ($CUDA_TAG) from the sdist; ~12 min on 2 cores, once per machine"
  tb=$(date +%s)
  BUILD=$(mktemp -d)
  "$VPY" -m pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VER" -d "$BUILD"
  tar -xzf "$BUILD"/mmcv-$MMCV_VER.tar.gz -C "$BUILD"
  SRC="$BUILD/mmcv-$MMCV_VER"
  # torch >= 2.1 headers need C++17.
  sed -i 's/-std=c++14/-std=c++17/g' "$SRC/setup.py"
  "${UV[@]}" -q "addict" "packaging" "pyyaml" "yapf" "pillow" "opencv-python-headless" "mmengine==0.10.7"
  ( cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$VPY" -m pip wheel -q --no-deps --no-build-isolation -w "$BUILD/dist" . )
  mkdir -p "$WHEEL_DIR"
  cp "$BUILD"/dist/mmcv-*.whl "$WHEEL_DIR"/
  rm -rf "$BUILD"
  log "mmcv wheel built in $(( $(date +%s) - tb )) s -> $WHEEL_DIR"
else
  log "using cached mmcv wheel in $WHEEL_DIR"
fi

log "OpenMMLab stack and the project (editable)"
"${UV[@]}" -q "$WHEEL_DIR"/mmcv-*.whl "mmengine==0.10.7" "mmdet==3.3.0" "mmyolo==0.6.0" \
  "grad-cam" "opencv-python-headless" "pytest" "pytest-timeout" "tensorboard" -e "$ROOT[tests]"
# grad-cam and others pull opencv-python; keep only the headless build to avoid two cv2 copies.
if "$VPY" -m pip show -q opencv-python >/dev/null 2>&1; then
  "$VENV/bin/uv" pip uninstall --python "$VPY" -q opencv-python
  "${UV[@]}" -q --reinstall-package opencv-python-headless opencv-python-headless
fi
# Final guard: the registry torch (not a +cpu local file) and a working torchvision.
"${UV[@]}" -q "torch==$TORCH_VER" "torchvision==$TV_VER"
"$VPY" - <<PYEOF
import torch, torchvision, mmcv, mmcv.ops, mmdet, mmyolo, mmengine, pytorch_grad_cam, mmattnvis
assert torch.__version__.split('+')[0] == '$TORCH_VER', torch.__version__
assert '+cpu' not in torch.__version__, 'local CPU-only torch file was picked: ' + torch.__version__
torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)
print('[setup] ok: torch', torch.__version__, 'torchvision', torchvision.__version__,
      'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmyolo', mmyolo.__version__)
PYEOF
echo "$REQ_HASH" > "$STAMP"
log "done in $(( $(date +%s) - t0 )) s"
