#!/usr/bin/env bash
# Downloads the built ComfyUI frontends the browser tests serve (the
# comfyui-frontend-package wheels from PyPI, pinned versions) and extracts
# their static files to <root>/<version>/static/, where <root> is
# $COMFY_FRONTENDS or ${COMFY_CI_CACHE:-~/.cache/comfy-ci}/frontend.
# Cached: a version already extracted is not fetched again.
# Usage: bash .ci/frontends.sh [VERSION...]   (default: the tested versions)
set -euo pipefail
root="${COMFY_FRONTENDS:-${COMFY_CI_CACHE:-$HOME/.cache/comfy-ci}/frontend}"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(1.36.14 1.37.11 1.48.7 1.58.1)
mkdir -p "$root/wheels"
for v in "${versions[@]}"; do
  if [ -f "$root/$v/static/index.html" ]; then
    echo "frontend $v: cached"
    continue
  fi
  python3 -m pip download -q --no-deps "comfyui-frontend-package==$v" -d "$root/wheels"
  python3 - "$root" "$v" <<'PY'
import os, shutil, sys, zipfile
root, v = sys.argv[1], sys.argv[2]
wheel = os.path.join(root, "wheels", f"comfyui_frontend_package-{v}-py3-none-any.whl")
tmp = os.path.join(root, f".{v}.tmp")
shutil.rmtree(tmp, ignore_errors=True)
prefix = "comfyui_frontend_package/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix + "static/") or name.endswith("/"):
            continue
        out = os.path.join(tmp, name[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(z.read(name))
shutil.rmtree(os.path.join(root, v), ignore_errors=True)
os.rename(tmp, os.path.join(root, v))
PY
  echo "frontend $v: extracted"
done
