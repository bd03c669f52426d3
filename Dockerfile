# Multi-stage build: wheels in a builder, a slim runtime as a non-root user.
FROM python:3.11-slim AS builder
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY gateway ./gateway
# setup.py copies the bundled policies into the wheel (gateway/bundled_policies).
COPY policies ./policies
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 gateway
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /srv/gateway
COPY policies ./policies
RUN mkdir -p /srv/gateway/data && chown -R gateway:gateway /srv/gateway
USER gateway
ENV GATEWAY_POLICY_DIR=/srv/gateway/policies \
    GATEWAY_DATABASE_URL=sqlite+aiosqlite:////srv/gateway/data/gateway.db
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080"]
