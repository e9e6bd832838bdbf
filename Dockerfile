# syntax=docker/dockerfile:1
# Leadflow services image. One image for every service, the one run chosen by the command:
#   docker run leadflow serve ingest      (default; :8001)
#   docker run leadflow serve scoring     (:8002)   serve routing (:8003)   serve reporting (:8004)
#   docker run leadflow migrate           (Alembic migrations of every schema; run before a new version)
#   docker run leadflow topics            (create missing Kafka topics)
#   docker run leadflow config            (every LEADFLOW_* variable with its default)
# Every setting comes from LEADFLOW_* environment variables; see README, "Production".

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/leadflow
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN /opt/leadflow/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/leadflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LEADFLOW_INGEST_HOST=0.0.0.0 \
    LEADFLOW_SCORING_HOST=0.0.0.0 \
    LEADFLOW_ROUTING_HOST=0.0.0.0 \
    LEADFLOW_REPORTING_HOST=0.0.0.0
RUN groupadd --system --gid 10001 leadflow \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin leadflow
COPY --from=build /opt/leadflow /opt/leadflow
# Numeric, so that Kubernetes can check runAsNonRoot without resolving the name.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8001 8002 8003 8004
# Exec form: the service is PID 1 and gets SIGTERM itself (uvicorn drains, the producer flushes).
ENTRYPOINT ["leadflow"]
CMD ["serve", "ingest"]
