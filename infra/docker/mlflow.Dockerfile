# MLflow server with the PostgreSQL and S3 clients the official image lacks, as a non-root user.
# Same pinned base as app.Dockerfile (see the note there on its digest).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1
FROM ${PYTHON_IMAGE}
RUN pip install --no-cache-dir mlflow==3.17.2 psycopg2-binary==2.9.13 boto3==1.44.8 \
    && groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /home/mlflow --create-home \
        --shell /usr/sbin/nologin mlflow
COPY infra/docker/mlflow_server.py /usr/local/lib/mlflow_server.py
USER 10001:10001
EXPOSE 5000
# Builds the backend store's URI from CRM_PG_* and hands it over in the environment: the
# database password is never on a command line.
ENTRYPOINT ["python", "/usr/local/lib/mlflow_server.py"]
