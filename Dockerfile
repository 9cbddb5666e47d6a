# zdg base image: a venv with the framework (pyzmq, msgpack, numpy, pydantic; psycopg for graph recovery,
# which keeps a graph's epoch in the store) running one node of a graph: `docker run IMAGE GRAPH NODE` =
# `zdg node GRAPH NODE`. Face and store nodes use the faces image (docker/faces.Dockerfile) built on top
# of this one. No models, stores or keys inside: they are volumes. Build with `zdg build` (or:
# docker build -t zdg:0.1.0 .).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Every stage of zdg's images carries this label: after a build, `zdg build` removes the untagged ones (older build
# stages, images a rebuild replaced), and only those; the newest build stage stays, tagged zdg:VERSION-build, as cache.
LABEL zdg.image=true
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# docker/build-ca/ may hold a CA bundle for pip behind a proxy; it stays in this stage only.
COPY docker/build-ca/ /tmp/build-ca/
COPY pyproject.toml README.md /src/
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && python3 -m venv /opt/zdg \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && echo 'psycopg[binary]>=3.1' >> /tmp/requirements.txt \
 && /opt/zdg/bin/pip install -r /tmp/requirements.txt
COPY zdg /src/zdg
COPY nodes /src/nodes
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && /opt/zdg/bin/pip install --no-deps /src

FROM ${BASE_IMAGE}
LABEL zdg.image=true
RUN useradd --create-home --uid 1000 zdg && mkdir -p /work/out /etc/zdg && chown zdg /work /work/out
COPY --from=build /opt/zdg /opt/zdg
ENV PATH=/opt/zdg/bin:$PATH PYTHONUNBUFFERED=1
USER zdg
WORKDIR /work
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["zdg", "health"]
ENTRYPOINT ["zdg", "node"]
