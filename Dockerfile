# DuckDB Flight SQL server: slim Python, non-root, data on a volume, health checked over HTTP.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLIGHT_HOST=0.0.0.0 \
    FLIGHT_PORT=31337 \
    FLIGHT_HTTP_PORT=8080 \
    FLIGHT_DATA_DIR=/data \
    DUCKDB_DATABASE_PATH=/data/flight.duckdb \
    DUCKDB_MAX_MEMORY_PERCENTAGE=75 \
    DUCKDB_WORKER_THREADS=0 \
    DUCKDB_MEMORY_LIMIT=""

RUN useradd --system --create-home --uid 10001 flight \
 && mkdir -p /data && chown flight:flight /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY flight_server ./flight_server
COPY clients ./clients
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER flight
VOLUME ["/data"]
EXPOSE 31337 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"FLIGHT_HTTP_PORT\", \"8080\")}/health/ready', timeout=4)"

STOPSIGNAL SIGTERM
ENTRYPOINT ["duckdb-flight-server"]
