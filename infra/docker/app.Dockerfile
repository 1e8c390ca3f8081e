# The project (flows, training, serving) from the committed lockfile; one target per role.
FROM python:3.11-slim AS base
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH" CRM_PROFILE=stack

# One-shot pipeline job and the Prefect process worker.
FROM base AS worker
CMD ["crm", "pipeline"]

# The BentoML scorer.
FROM base AS scorer
EXPOSE 3000
CMD ["bentoml", "serve", "serving.service:Scorer", "--host", "0.0.0.0", "--port", "3000"]

# The Streamlit explorer.
FROM base AS explorer
EXPOSE 8501
CMD ["streamlit", "run", "serving/explorer/app.py", "--server.headless", "true", \
     "--server.address", "0.0.0.0", "--server.port", "8501"]
