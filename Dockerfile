# perdure's HTTP server (`perdure server`), as a non-root user, with a health check on /health.
#
#   docker build -t perdure .
#   docker run -p 8288:8288 -e PERDURE_API_TOKEN=... \
#       -e PERDURE_DATABASE_URL=postgresql://user:password@db:5432/perdure perdure
#
# The same image runs workers: `docker run ... perdure worker your.module:app` (with your code
# installed in an image built FROM this one). compose.yaml runs it with PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install perdure from this source tree, then drop the tree.
COPY pyproject.toml README.md /tmp/perdure-src/
COPY src /tmp/perdure-src/src
RUN pip install --no-cache-dir /tmp/perdure-src && rm -rf /tmp/perdure-src

# A system user without a login shell; /data is its working folder (the SQLite fallback,
# .perdure/perdure.db, lands there when no PERDURE_DATABASE_URL is given).
RUN groupadd --system --gid 10001 perdure \
    && useradd --system --uid 10001 --gid perdure --home-dir /data --create-home \
        --shell /usr/sbin/nologin perdure
USER 10001:10001
WORKDIR /data

# PERDURE_API_TOKEN (required) and PERDURE_DATABASE_URL come from the environment; so do the
# optional INNGEST_SIGNING_KEY / INNGEST_EVENT_KEY of the self-hosted mode for Inngest SDK apps.
EXPOSE 8288
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8288/health', timeout=4)"]
ENTRYPOINT ["perdure"]
CMD ["server", "--host", "0.0.0.0", "--port", "8288"]
