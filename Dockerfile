# costmesh: one image per service, each installing only what that service imports (its extra in
# pyproject.toml), one for the GPU inference service, and one of everything (app).
#
#   docker build --target gateway    -t costmesh-gateway:dev .     # + costmesh keys, limits, mesh-secret, tls-cert, report
#   docker build --target cache      -t costmesh-cache:dev .       # MiniLM on ONNX Runtime, exported at build: no torch
#   docker build --target classifier -t costmesh-classifier:dev .  # the same
#   docker build --target router     -t costmesh-router:dev .
#   docker build --target providers  -t costmesh-providers:dev .
#   docker build --target batches    -t costmesh-batches:dev .
#   docker build --target simulator  -t costmesh-simulator:dev .
#   docker build --target inference  -t costmesh-inference:dev .   # vLLM on an NVIDIA GPU
#   docker build --target app        -t costmesh:dev .             # every service and the tooling, CPU torch
#
# `docker compose build` builds the ones it runs. Each image runs its service by default (app: the
# gateway; pick another with python -m costmesh.services.<name>). Build with BuildKit (the default
# since Docker 23): it builds only the stages a target needs.

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

# The runtime dependencies from pyproject.toml, one requirements file per extra (the base
# dependencies, the extra's and those of the extras it names), written by
# deploy/docker/requirements.py: <extra>.txt, and for the model services <extra>.runtime.txt
# (without the models-export extra: torch, sentence-transformers, onnx) plus <extra>.nodeps.txt.
# Installing them before the source is copied keeps those (slow) layers cached across code changes.
FROM python-base AS requirements
COPY pyproject.toml deploy/docker/requirements.py /tmp/
RUN python /tmp/requirements.py /tmp/pyproject.toml /tmp/requirements

# costmesh itself, as one wheel every image installs with --no-deps.
FROM python-base AS wheel
WORKDIR /src
COPY pyproject.toml setup.py README.md* ./
COPY costmesh ./costmesh
COPY services ./services
COPY gateway ./gateway
COPY tooling ./tooling
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
# The ONNX exports of the packaged models (MiniLM fp32 and int8, the verifier's cross-encoder),
# made here from the torch weights so that the cache and classifier images need no torch.
FROM python-base AS onnx-export
ARG TORCH_VERSION
RUN python -m venv /opt/venv
# CPU-only torch first, so that the torch==2.13.0 pin below is already met without CUDA wheels.
RUN pip install torch==${TORCH_VERSION} --index-url https://download.pytorch.org/whl/cpu
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN pip install -r /tmp/requirements/models.txt -r /tmp/requirements/models-export.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl \
 && python -m costmesh.tooling.onnx_export /opt/costmesh/onnx

# ---------------------------------------------------------------------------------------------
# Each service's environment: its extra's requirements, then costmesh, then its modules imported
# once (a missing dependency fails the build, not the first start).
FROM python-base AS gateway-venv
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN python -m venv /opt/venv \
 && pip install -r /tmp/requirements/gateway.txt -r /tmp/requirements/report.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl \
 && python -c "import costmesh.gateway.service, costmesh.tooling.report.command, costmesh.gateway.auth_cli"

FROM python-base AS cache-venv
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN python -m venv /opt/venv \
 && pip install -r /tmp/requirements/cache.runtime.txt \
 && pip install --no-deps -r /tmp/requirements/cache.nodeps.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl \
 && python -c "import costmesh.services.cache.service"

FROM python-base AS classifier-venv
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN python -m venv /opt/venv \
 && pip install -r /tmp/requirements/classifier.runtime.txt \
 && pip install --no-deps -r /tmp/requirements/classifier.nodeps.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl \
 && python -c "import costmesh.services.classifier.service"

FROM python-base AS router-venv
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN python -m venv /opt/venv \
 && pip install -r /tmp/requirements/router.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl \
 && python -c "import costmesh.services.router.service"

FROM python-base AS providers-venv
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN python -m venv /opt/venv \
 && pip install -r /tmp/requirements/providers.txt -r /tmp/requirements/prefix-routing.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl \
 && python -c "import costmesh.services.providers.service"

FROM python-base AS batches-venv
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN python -m venv /opt/venv \
 && pip install -r /tmp/requirements/batches.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl \
 && python -c "import costmesh.services.batches.service"

FROM python-base AS simulator-venv
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN python -m venv /opt/venv \
 && pip install -r /tmp/requirements/simulator.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl \
 && python -c "import costmesh.services.simulator.server"

# Everything (the serve extra: every service, the launcher, the tooling), with CPU torch.
FROM python-base AS app-venv
ARG TORCH_VERSION
RUN python -m venv /opt/venv
RUN pip install torch==${TORCH_VERSION} --index-url https://download.pytorch.org/whl/cpu
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN pip install -r /tmp/requirements/serve.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl \
 && python -c "import costmesh.catalog, costmesh.gateway, costmesh.services; costmesh.catalog.load_catalog()"

# ---------------------------------------------------------------------------------------------
# GPU inference: vLLM with CUDA torch from PyPI (the NVIDIA driver comes from the host through
# the NVIDIA container toolkit), and the inference extra. Its own environment: its pins differ
# from the CPU images'.
FROM python-base AS inference
ARG VLLM_VERSION
# Triton compiles small launcher stubs at run time and needs a C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY --from=requirements /tmp/requirements /tmp/requirements
RUN pip install vllm==${VLLM_VERSION} -r /tmp/requirements/inference.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/costmesh-*.whl && rm -rf /tmp/wheels
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
# What every CPU image shares: the health check, the directories of the volumes, the user.
FROM python-base AS runtime
COPY deploy/docker/healthcheck.py /opt/costmesh/healthcheck.py
# The mesh secret (a volume in docker-compose: `costmesh mesh-secret` writes it, the services read it),
# and the gateway's TLS certificate (a volume: `costmesh tls-cert` writes it, or your own files).
RUN mkdir -p -m 0700 /var/lib/costmesh/mesh /var/lib/costmesh/tls
# The gateway's cost records (one JSON line per request) and its API keys (docker-compose: the
# costmesh-keys volume, which takes this directory's owner on first use) live on volumes mounted here.
RUN mkdir -p /var/lib/costmesh/records /var/lib/costmesh/keys && chown -R 10001:10001 /var/lib/costmesh
WORKDIR /home/costmesh
# Everything a service writes goes under /tmp, so the root filesystem can be read-only.
# No model hub is used at run time: the embedding model and tokenizers ship in wheels, and the
# model images' ONNX exports in /opt/costmesh/onnx (read-only; COSTMESH_ONNX_CACHE).
ENV HOME=/home/costmesh \
    XDG_CACHE_HOME=/tmp/cache \
    HF_HOME=/tmp/cache/huggingface \
    HF_HUB_OFFLINE=1 \
    COSTMESH_HOST=0.0.0.0 \
    COSTMESH_METRICS_PORT=9464
USER 10001:10001
# gRPC health on $COSTMESH_PORT (each image sets its own), over TLS where the gateway serves it.
# docker-compose and Kubernetes run their own checks too (kubelet's grpc probes).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/costmesh/healthcheck.py"]

FROM runtime AS gateway
COPY --from=gateway-venv /opt/venv /opt/venv
ENV COSTMESH_PORT=50051
EXPOSE 50051 8080 9464
CMD ["python", "-m", "costmesh.gateway"]

FROM runtime AS cache
COPY --from=cache-venv /opt/venv /opt/venv
COPY --from=onnx-export /opt/costmesh/onnx /opt/costmesh/onnx
# TRANSFORMERS_VERBOSITY: transformers warns at import that it found no torch, which is the point.
ENV COSTMESH_PORT=50052 \
    COSTMESH_ONNX_CACHE=/opt/costmesh/onnx \
    TRANSFORMERS_VERBOSITY=error
EXPOSE 50052 9464
CMD ["python", "-m", "costmesh.services.cache"]

FROM runtime AS classifier
COPY --from=classifier-venv /opt/venv /opt/venv
COPY --from=onnx-export /opt/costmesh/onnx/sentence-* /opt/costmesh/onnx/
ENV COSTMESH_PORT=50053 \
    COSTMESH_ONNX_CACHE=/opt/costmesh/onnx \
    TRANSFORMERS_VERBOSITY=error
EXPOSE 50053 9464
CMD ["python", "-m", "costmesh.services.classifier"]

FROM runtime AS router
COPY --from=router-venv /opt/venv /opt/venv
ENV COSTMESH_PORT=50054
EXPOSE 50054 9464
CMD ["python", "-m", "costmesh.services.router"]

FROM runtime AS providers
COPY --from=providers-venv /opt/venv /opt/venv
ENV COSTMESH_PORT=50055 \
    TRANSFORMERS_VERBOSITY=error
EXPOSE 50055 9464
CMD ["python", "-m", "costmesh.services.providers"]

FROM runtime AS batches
COPY --from=batches-venv /opt/venv /opt/venv
ENV COSTMESH_PORT=50057
EXPOSE 50057 9464
CMD ["python", "-m", "costmesh.services.batches"]

# The provider simulator speaks HTTP: its health check is a TCP connect.
FROM runtime AS simulator
COPY --from=simulator-venv /opt/venv /opt/venv
ENV SIM_HOST=0.0.0.0 \
    SIM_PORT=8089
EXPOSE 8089
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/costmesh/healthcheck.py", "--tcp", "--port", "8089"]
CMD ["python", "-m", "costmesh.services.simulator"]

# Every CPU service in one image (the default target: keep it last). It runs the gateway unless
# told otherwise, so its health check is left to whoever picks the service (COSTMESH_PORT).
FROM runtime AS app
COPY --from=app-venv /opt/venv /opt/venv
COPY --from=onnx-export /opt/costmesh/onnx /opt/costmesh/onnx
ENV COSTMESH_ONNX_CACHE=/opt/costmesh/onnx
EXPOSE 50051 50052 50053 50054 50055 50057 8080 8089 9464
HEALTHCHECK NONE
CMD ["python", "-m", "costmesh.gateway"]
