#
# safety-gate image: the webhook, its CLI (migrate, cleanup, approve, ...),
# nothing else. No embedded PostgreSQL/Redis (the `embedded` extra is for
# development and tests only); in a cluster the gate talks to the chart's
# PostgreSQL and Redis, or to external ones.
#
#   docker build -t ghcr.io/safety-gate/safety-gate:0.1.0 .
#   docker build --build-arg BASE=registry.example.com/python:3.11-slim .
#
# Plain `docker build` (no BuildKit-only syntax). BASE is any image with
# python3 (>= 3.11, with venv) and a shell; both stages use it, so the venv
# copied from the build stage finds the same interpreter at run time.
# Offline builds (e2e/kind/build-images.sh) use a Debian base and put a
# `wheelhouse/` of the project's and its dependencies' wheels into the
# context: pip then installs with --no-index and never reaches an index.
ARG BASE=python:3.11-slim

# ---------------------------------------------------------------------------
# build: a virtualenv with the project and its dependencies (wheels only: no
# compiler is needed, none is installed).
# ---------------------------------------------------------------------------
FROM ${BASE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# The context is restricted by .dockerignore to pyproject.toml, README, LICENSE,
# webhook/, migrations/ and an optional wheelhouse/.
COPY . .
RUN python3 -m venv /opt/safety-gate \
 && if [ -d wheelhouse ]; then \
      /opt/safety-gate/bin/pip install --no-index --find-links=wheelhouse --only-binary=:all: safety-gate; \
    else \
      /opt/safety-gate/bin/pip install . ; \
    fi \
 && /opt/safety-gate/bin/pip uninstall -y pip \
 && /opt/safety-gate/bin/python -m compileall -q -j 0 /opt/safety-gate/lib

# ---------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------
FROM ${BASE} AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="safety-gate" \
      org.opencontainers.image.description="Validating admission webhook that stops AI remediation agents from oscillating" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/safety-gate/safety-gate"

# Bytecode was compiled in the build stage: nothing is written at run time,
# so the root filesystem can be mounted read-only.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/safety-gate/bin:$PATH \
    SAFETY_GATE_DATA_DIR=/var/lib/safety-gate

COPY --from=build /opt/safety-gate /opt/safety-gate

# Fixed non-root identity (matches the chart's runAsUser/runAsGroup 65532).
# The data dir is the local spool (an emptyDir in the chart).
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
      --home-dir /var/lib/safety-gate --shell /usr/sbin/nologin nonroot \
 && mkdir -p /var/lib/safety-gate \
 && chown 65532:65532 /var/lib/safety-gate \
 && chmod 0750 /var/lib/safety-gate \
 && safety-gate --help >/dev/null

USER 65532:65532
WORKDIR /var/lib/safety-gate

# 8443: HTTPS (admission, health, REST API); 9090: Prometheus metrics.
EXPOSE 8443 9090

ENTRYPOINT ["safety-gate"]
CMD ["serve"]
