# syntax=docker/dockerfile:1
#
# The one image of Rescue: `rescue webhook ...` and `rescue operator ...` are the same program
# with a different first argument, as deploy/base runs them.
#
# It is built to run as deploy/base runs it: as UID 10001 (runAsUser in the manifests), with a
# read-only root filesystem and an emptyDir at /tmp. Nothing is written outside /tmp at run
# time: Python's bytecode is compiled at build time, HOME and every cache point into /tmp, and
# the operator keeps its GitOps clones in /tmp/git (--git-cache).
#
#   docker build -t rescue:dev .
#
# Pin the base image by digest in your own builds (python:3.11-slim-bookworm@sha256:...); the
# tag below names the Debian release so that `git` and OpenSSH stay on one release line.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the package and its dependencies, at the versions CI tests, in a virtualenv ------
FROM ${PYTHON_IMAGE} AS build
# PYTHONSAFEPATH: in /src, the folder operator/ would shadow the standard library's operator
# module for `python -m`.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1
WORKDIR /src
# Only what the package needs; rescue/ links to core/, webhook/, operator/ and crds/, so those
# are copied beside it and `pip install .` resolves the links as an install from the repository
# does (README, Layout).
COPY pyproject.toml constraints.txt README.md ./
COPY core/ core/
COPY webhook/ webhook/
COPY operator/ operator/
COPY crds/ crds/
COPY rescue/ rescue/
# --only-binary: every dependency comes as a wheel, so no compiler is needed here and the build
# fails rather than compiling something CI never ran.
RUN python -m venv /opt/rescue \
 && /opt/rescue/bin/pip install --only-binary=:all: -c constraints.txt . \
 && /opt/rescue/bin/python -m compileall -q /opt/rescue/lib \
 && /opt/rescue/bin/rescue --help > /dev/null

# --- runtime: the virtualenv, git and ssh for the GitOps remotes, and a numeric non-root user -
FROM ${PYTHON_IMAGE} AS runtime
# git pushes the mitigation commits; ssh reaches SSH remotes (a policy's ssh-privatekey).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/*
# ssh refuses to run for a UID without a passwd entry, so the user exists by name too. Its home
# is /tmp, the one writable place, for ssh (which ignores $HOME) as for everything else.
RUN groupadd --gid 10001 rescue \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin rescue
COPY --from=build /opt/rescue /opt/rescue
ENV PATH=/opt/rescue/bin:${PATH} \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONSAFEPATH=1
LABEL org.opencontainers.image.title="rescue" \
      org.opencontainers.image.description="Incident response for Kubernetes, the GitOps way: the Alertmanager webhook and the operator" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /tmp
USER 10001:10001
# 8080: the webhook (notifications, probes, metrics); 8081 and 9090: the operator's liveness and
# metrics. Which ones listen depends on the first argument.
EXPOSE 8080 8081 9090
ENTRYPOINT ["rescue"]
CMD ["--help"]
