# lonescale-sync as a container: the daemon (`run`), its webhook on :8080, the store in /var/lib/lonescale-sync
# or in PostgreSQL (compose.yaml). Mount your config and mappings at /etc/lonescale-sync.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY connector ./connector
RUN pip install ".[postgres,cluster]" && rm -rf /src

# Never root: the daemon needs only its data folder.
RUN useradd --system --uid 10001 --home-dir /var/lib/lonescale-sync --create-home lonescale-sync
USER lonescale-sync
WORKDIR /var/lib/lonescale-sync
VOLUME ["/var/lib/lonescale-sync"]

# 8080: the webhook; 8081: the status page and /metrics (`[status] listen`, behind its token).
EXPOSE 8080 8081
# /healthz answers 200 while the store answers a query (503 when it does not).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]

# SIGTERM (docker stop) finishes in-flight syncs and writes; give it time: `docker stop -t 120`, or
# stop_grace_period in compose.yaml.
STOPSIGNAL SIGTERM
ENTRYPOINT ["lonescale-sync"]
CMD ["run", "--config", "/etc/lonescale-sync/config.toml"]
