# syntax=docker/dockerfile:1
# The Isthmus service image: `isthmus serve` as uid 10001 on a read-only root filesystem.
#
#   docker build -t registry.example.com/platform/isthmus:0.1.0 .
#   docker run --rm -p 8000:8000 -v "$PWD/my-config:/etc/isthmus:ro" \
#       registry.example.com/platform/isthmus:0.1.0
#
# Two stages: the builder turns Isthmus and every dependency into wheels and installs them,
# offline, into a virtualenv at /opt/isthmus; the final stage is the same base image with that
# virtualenv copied in, and no compiler, no package cache, no pip. docs/deploy.md has the rest.
#
# The base is pinned to an exact version tag (a floating tag like 3.11-slim changes under you).
# Pin its digest too where you build: `docker buildx imagetools inspect python:3.11.17-slim-trixie`
# prints it; then build with --build-arg PYTHON_IMAGE=python:3.11.17-slim-trixie@sha256:...
ARG PYTHON_IMAGE=python:3.11.17-slim-trixie

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# .dockerignore lets only these through: no .venv, no tests, no local state or tokens.
COPY pyproject.toml README.md ./
COPY scheduler/ scheduler/
COPY adapters/ adapters/
# 1. Wheels of Isthmus and of everything it depends on.
RUN pip wheel --wheel-dir /wheels .
# 2. Installed offline from those wheels only, byte-compiled (the root filesystem is read-only
#    at run time, so Python could not write its caches then); pip itself is not kept.
RUN python -m venv /opt/isthmus \
 && /opt/isthmus/bin/pip install --no-index --find-links /wheels --compile isthmus \
 && /opt/isthmus/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="isthmus" \
      org.opencontainers.image.description="Isthmus cross-region compute scheduler: isthmus serve" \
      org.opencontainers.image.licenses="Proprietary"
# The service's user, and the places the Helm chart mounts: /etc/isthmus (configuration, tokens,
# site kubeconfigs), /var/lib/isthmus (SQLite for single-replica trials), /tmp (an emptyDir).
# The base image's pip and setuptools go: nothing is installed at run time.
RUN groupadd --system --gid 10001 isthmus \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin isthmus \
 && mkdir -p /etc/isthmus /var/lib/isthmus \
 && chown 10001:10001 /var/lib/isthmus \
 && python -m pip uninstall --yes --quiet pip setuptools wheel
COPY --from=builder /opt/isthmus /opt/isthmus
ENV PATH="/opt/isthmus/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["isthmus"]
CMD ["serve", "--config", "/etc/isthmus/isthmus.yaml", "--host", "0.0.0.0"]
