# zdg faces image: the base image plus the face and store libraries (onnxruntime, insightface,
# OpenCV, psycopg + pgvector, scikit-learn, dlib). Runs video_source, detector, embedder, sequencer,
# sinks, db_writer and reid. Models come from a volume at /models (ZDG_MODEL_ROOT).
ARG ZDG_IMAGE=zdg:0.1.0

FROM ${ZDG_IMAGE} AS build
USER root
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# insightface has no wheels: its Cython part is compiled here and only the venv is kept.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends g++ python3-dev >/dev/null
COPY docker/build-ca/ /tmp/build-ca/
COPY pyproject.toml /src/
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml','rb'))['project']['optional-dependencies']['faces']))" > /tmp/requirements.txt \
 && /opt/zdg/bin/pip install -r /tmp/requirements.txt

FROM ${ZDG_IMAGE}
COPY --from=build /opt/zdg /opt/zdg
