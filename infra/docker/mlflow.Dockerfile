# MLflow server with the PostgreSQL and S3 clients the official image lacks.
FROM python:3.11-slim
RUN pip install --no-cache-dir mlflow==3.17.2 psycopg2-binary==2.9.10 boto3
EXPOSE 5000
