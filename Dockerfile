# syntax=docker/dockerfile:1.7
#
# safety-gate image: the webhook, its CLI (migrate, cleanup, approve, ...),
# nothing else. No embedded PostgreSQL/Redis (the `embedded` extra is for
# development and tests only); in a cluster the gate talks to external ones.
#
#   docker build -t ghcr.io/safety-gate/safety-gate:0.1.0 .
#
ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------
# build: wheels of the project and of every dependency, so the runtime stage
# installs offline and never needs a compiler.
# ---------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers only for dependencies that ship no wheel for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The context is restricted by .dockerignore to pyproject.toml, README, LICENSE,
# webhook/ and migrations/.
COPY . .
RUN pip wheel . -w /wheels

# ---------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="safety-gate" \
      org.opencontainers.image.description="Validating admission webhook that stops AI remediation agents from oscillating" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/safety-gate/safety-gate"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SAFETY_GATE_DATA_DIR=/var/lib/safety-gate

# Install from the wheels only (no index, no build tools). The wheels are
# bind-mounted from the build stage so they do not end up in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels safety-gate \
 && safety-gate --help >/dev/null

# Fixed non-root identity (matches the chart's runAsUser/runAsGroup 65532).
# The data dir is the local spool (an emptyDir in the chart); the root
# filesystem can be mounted read-only.
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
      --home-dir /var/lib/safety-gate --shell /usr/sbin/nologin nonroot \
 && mkdir -p /var/lib/safety-gate \
 && chown 65532:65532 /var/lib/safety-gate \
 && chmod 0750 /var/lib/safety-gate

USER 65532:65532
WORKDIR /var/lib/safety-gate

# 8443: HTTPS (admission, health, REST API); 9090: Prometheus metrics.
EXPOSE 8443 9090

ENTRYPOINT ["safety-gate"]
CMD ["serve"]
