# The driftline image: the worker (`driftline serve`) and every client command
# (`driftline topics create`, `produce`, `replay`, `alerts`, `snapshots`, `backtest`).
#   docker build -t driftline .
#   docker run --rm driftline --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package needs (pyproject names README.md as its readme).
COPY pyproject.toml README.md ./
COPY learners ./learners
COPY detectors ./detectors
COPY stream ./stream
RUN pip install . && rm -rf /src/build

# Not root: the worker needs no privileges, only a data directory it owns.
RUN useradd --create-home --uid 10001 driftline \
    && mkdir -p /data \
    && chown driftline:driftline /data
USER driftline
WORKDIR /data

# Faust web (health), Prometheus /metrics: service.web_port, service.metrics_port;
# `driftline dashboard --host 0.0.0.0`: 8050.
EXPOSE 6066 9464 8050
ENTRYPOINT ["driftline"]
CMD ["--help"]
