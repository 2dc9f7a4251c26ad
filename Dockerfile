# The ServiceOffer hook image: Debian bookworm's own Python 3.11 and the hook in a virtual
# environment. One image, two containers (metacontroller/deployment.yaml): `obol hook serve`
# (the default command: gunicorn, sync port 8080) and `obol hook busy` (uvicorn, busy port 8081).
# Runs as a non-root numeric user with a read-only root filesystem; gunicorn's worker heartbeat
# goes to /tmp, which the Deployment mounts as an emptyDir.
#
#   docker build -t serviceoffer-hook .
#
# `make image` builds it with podman from a Debian root filesystem made on the machine, and
# `make image-check` runs both commands from it (.ci/image.sh). PIP_CERT (optional) names
# a CA bundle for pip, for networks that inspect TLS; the build mounts it, it is not copied.
FROM debian:bookworm-slim AS build
ARG PIP_CERT
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY .ci/constraints.txt .ci/
COPY hooks/ hooks/
# The package and its runtime dependencies only (no test extras), at the tested versions.
RUN python3 -m venv /opt/obol \
    && /opt/obol/bin/pip install ${PIP_CERT:+--cert "$PIP_CERT"} -c .ci/constraints.txt . \
    && /opt/obol/bin/pip uninstall -y pip \
    && find /opt/obol -name __pycache__ -prune -exec rm -rf {} + \
    && /opt/obol/bin/python -m compileall -q /opt/obol/lib

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/obol /opt/obol
ENV PATH=/opt/obol/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["obol", "hook"]
CMD ["serve"]
