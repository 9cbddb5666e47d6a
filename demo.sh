#!/usr/bin/env bash
# Set up (a venv with zdg) and run the main job on a real clip with the embedded store:
# video -> faces -> sequences -> Postgres+pgvector -> re-identification, then a summary and a report.
#   ./demo.sh [CLIP]          default: ../shared/data/videos/friends_poker.mp4
# Run it again on another clip (or with --set source.video_id=...) to re-identify people seen before.
set -euo pipefail
cd "$(dirname "$0")"
CLIP=${1:-../shared/data/videos/friends_poker.mp4}
shift || true
export ZDG_MODEL_ROOT=${ZDG_MODEL_ROOT:-$(cd .. && pwd)/shared/models}
if [ ! -x .venv/bin/zdg ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[all]'
fi
. .venv/bin/activate
zdg run graphs/video_reid.yaml --set source.path="$CLIP" "$@"
zdg summary
zdg report
echo "annotated video: out/reid/$(basename "${CLIP%.*}")_annotated.mp4   results topic: zdg sub (endpoint printed above) reid"
