# One image for every Weightsmith service (api, worker, beat, migrate); the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p config core export store worker service migrations \
    && pip install . \
    && pip uninstall -y weightsmith

COPY config ./config
COPY core ./core
COPY export ./export
COPY store ./store
COPY worker ./worker
COPY service ./service
COPY migrations ./migrations
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/weightsmith --create-home weightsmith

USER weightsmith
WORKDIR /var/lib/weightsmith
ENV WEIGHTSMITH_DATA_DIR=/var/lib/weightsmith
EXPOSE 8000

CMD ["weightsmith", "serve", "--host", "0.0.0.0", "--port", "8000"]
