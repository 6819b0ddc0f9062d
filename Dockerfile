# One image for every chiikipay service; `--service` picks which one a container serves.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the package (not editable) from a throw-away source folder.
COPY pyproject.toml README.md /src/
COPY shared /src/shared
COPY services /src/services
COPY migrations /src/migrations
RUN pip install /src && rm -rf /src

# Run as an unprivileged user. DATA_DIR holds the dev issuer's signing key (and, with no
# DATABASE_URL / REDIS_URL, the embedded servers); mount a volume there to share or keep it.
RUN useradd --system --create-home --uid 10001 chiikipay \
    && mkdir /data && chown chiikipay:chiikipay /data
ENV DATA_DIR=/data
USER chiikipay
WORKDIR /home/chiikipay

# DEV_ISSUER_ENABLED is left to the deployment (docker-compose.yml, or the orchestrator).
EXPOSE 8000
CMD ["chiikipay", "serve", "--host", "0.0.0.0", "--port", "8000"]
