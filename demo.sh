#!/usr/bin/env bash
# Set up (a venv with zdg) and run the main job on a real clip with the embedded store:
# video -> faces -> sequences -> Postgres+pgvector -> re-identification, then a summary and a report.
#   ./demo.sh [CLIP] [--set NODE.PARAM=VALUE ...]     default: ../shared/data/videos/friends_poker.mp4
# Run it again on another clip (or with --set source.video_id=...) to re-identify people seen before;
# `zdg ui` then shows every identity in a browser.
set -euo pipefail
cd "$(dirname "$0")"
CLIP=${1:-../shared/data/videos/friends_poker.mp4}
shift || true
export ZDG_MODEL_ROOT=${ZDG_MODEL_ROOT:-$(cd .. && pwd)/shared/models}
if [ ! -x .venv/bin/zdg ] || [ pyproject.toml -nt .venv/.zdg-installed ]; then  # first run, or an update since
    echo "installing zdg into .venv with its dependencies (onnxruntime, OpenCV, PostgreSQL, ...), as on a first run"
    echo "or after an update of pyproject.toml: about 80 s the first time"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[all]'
    touch .venv/.zdg-installed
    echo "installed"
fi
. .venv/bin/activate
VIDEO_ID=$(basename "${CLIP%.*}")
for arg in "$@"; do
    case $arg in source.video_id=*|--set=source.video_id=*) VIDEO_ID=${arg#*source.video_id=} ;; esac
done
echo "running graphs/video_reid.yaml on $CLIP (the first start loads models and the embedded store: a few seconds)"
zdg run graphs/video_reid.yaml --set source.path="$CLIP" "$@"
zdg summary
zdg report
echo "annotated video: out/reid/${VIDEO_ID}_annotated.mp4   results topic: zdg sub (endpoint printed above) reid"
echo "browse, search by photo and correct: zdg ui  (then open http://127.0.0.1:8080/)"
