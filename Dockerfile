# The ServiceOffer sync hook: `obol hook serve` (gunicorn, hooks/server/gunicorn_conf.py) on 8080 (sync)
# and 8081 (busy responder). Runs as a non-root numeric user with a read-only root filesystem:
# everything it writes (gunicorn heartbeats, Prometheus multiprocess files) goes under /tmp,
# which metacontroller/deployment.yaml mounts as an emptyDir.
#
#   docker build -t serviceoffer-hook .
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY .ci/constraints.txt .ci/
COPY hooks/ hooks/
# Wheels for the package and its runtime dependencies only (no test extras), at the versions
# the test suite ran with.
RUN pip wheel --wheel-dir /wheels -c .ci/constraints.txt .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels obol-serviceoffer-hook \
    && rm -rf /wheels
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["obol", "hook", "serve"]
