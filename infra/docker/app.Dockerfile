# The project (flows, training, serving) from the committed lockfile; one target per role.
# `build` resolves the locked environment with uv; the role stages copy only /app (the source
# and its .venv) onto a clean base and run as an unprivileged user. .dockerignore keeps .env,
# .stack*, .crm*, .git and the host's .venv out of the build context.
#
# The base is pinned by tag and digest. The digest is python:3.11.13-slim-bookworm's as recorded
# by several public projects; it could not be re-resolved where this file was written (no
# registry access). When upgrading, refresh both with
# `docker buildx imagetools inspect python:3.11-slim-bookworm`.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1
# uv's own image, pinned to the version that wrote uv.lock.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev

FROM ${PYTHON_IMAGE} AS base
RUN groupadd --system --gid 10001 crm \
    && useradd --system --uid 10001 --gid crm --home-dir /home/crm --create-home \
        --shell /usr/sbin/nologin crm
# Owned by root and read-only for the app; its state (DuckDB extensions, BentoML, Prefect,
# Streamlit) goes under its home.
COPY --from=build /app /app
WORKDIR /app
ENV PATH="/app/.venv/bin:$PATH" PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/crm CRM_HOME=/home/crm/.crm CRM_PROFILE=stack
USER 10001:10001

# One-shot pipeline job and the Prefect process worker.
FROM base AS worker
CMD ["crm", "pipeline"]

# The BentoML scorer (all interfaces inside its container; compose publishes it on 127.0.0.1).
FROM base AS scorer
EXPOSE 3000
CMD ["bentoml", "serve", "serving.service:Scorer", "--host", "0.0.0.0", "--port", "3000"]

# The Streamlit explorer.
FROM base AS explorer
EXPOSE 8501
CMD ["streamlit", "run", "serving/explorer/app.py", "--server.headless", "true", \
     "--server.address", "0.0.0.0", "--server.port", "8501"]
