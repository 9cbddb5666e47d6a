# zdg faces image for NVIDIA GPUs: onnxruntime-gpu on a CUDA/cuDNN runtime base. Same entrypoint and
# volumes as the CPU image; run with `--gpus all` (Compose: deploy.resources.reservations.devices).
# Build: zdg build --gpu   (not built or run in CI: no GPU or registry there).
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
LABEL zdg.image=true
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv python3-dev g++ >/dev/null
COPY docker/build-ca/ /tmp/build-ca/
COPY pyproject.toml README.md /src/
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && python3 -m venv /opt/zdg \
 && python3 -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml','rb'))['project']; \
print('\n'.join(p['dependencies'] + [d.replace('onnxruntime', 'onnxruntime-gpu') for d in p['optional-dependencies']['faces']]))" \
    > /tmp/requirements.txt \
 && /opt/zdg/bin/pip install -r /tmp/requirements.txt
COPY zdg /src/zdg
COPY nodes /src/nodes
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && /opt/zdg/bin/pip install --no-deps /src

FROM ${CUDA_IMAGE}
LABEL zdg.image=true
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 libgl1 libglib2.0-0 >/dev/null \
 && rm -rf /var/lib/apt/lists/* && useradd --create-home --uid 1001 zdg && mkdir -p /work/out && chown zdg /work /work/out
COPY --from=build /opt/zdg /opt/zdg
ENV PATH=/opt/zdg/bin:$PATH PYTHONUNBUFFERED=1
USER zdg
WORKDIR /work
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["zdg", "health"]
ENTRYPOINT ["zdg", "node"]
