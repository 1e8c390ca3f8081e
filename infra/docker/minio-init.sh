#!/bin/sh
# One-shot after MinIO is healthy: the buckets, and the application's own user with a policy
# limited to them. The application never gets MinIO's root keys.
# Root keys (MINIO_ROOT_*) and application keys (CRM_S3_*, the stack profile's defaults when
# unset) come from .env through the environment: mc reads the root keys from MC_HOST_lake and
# the application's secret from stdin, so no key is ever on a command line.
set -eu
app_key="${CRM_S3_ACCESS_KEY_ID:-crm}"
app_secret="${CRM_S3_SECRET_ACCESS_KEY:-crm-secret-key}"
lake="${CRM_LAKE_BUCKET:-data-lake}"
artifacts="${CRM_MLFLOW_BUCKET:-mlflow-artifacts}"
: "${MINIO_ROOT_USER:?set MINIO_ROOT_USER in .env (see .env.example)}"
: "${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD in .env (see .env.example)}"
if [ "$app_key" = "$MINIO_ROOT_USER" ]; then
  echo "CRM_S3_ACCESS_KEY_ID must differ from MINIO_ROOT_USER: the application gets its own keys." >&2
  exit 1
fi

# Root password: URL-safe characters (e.g. `openssl rand -hex 24`), it is read as a URL.
export MC_HOST_lake="http://${MINIO_ROOT_USER}:${MINIO_ROOT_PASSWORD}@minio:9000"
mc mb --ignore-existing "lake/$lake" "lake/$artifacts"

policy="$(mktemp)"
cat > "$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": ["arn:aws:s3:::*"]},
    {"Effect": "Allow", "Action": ["s3:*"],
     "Resource": ["arn:aws:s3:::$lake", "arn:aws:s3:::$lake/*",
                  "arn:aws:s3:::$artifacts", "arn:aws:s3:::$artifacts/*"]}
  ]
}
JSON
mc admin policy create lake crm-app "$policy"
rm -f "$policy"
# `mc admin user add ALIAS` reads the access key and the secret key from stdin (printf is a
# shell builtin: no process, no command line). Adding an existing user resets its secret.
printf '%s\n%s\n' "$app_key" "$app_secret" | mc admin user add lake
mc admin policy attach lake crm-app --user "$app_key" \
  || mc admin user info lake "$app_key" | grep -q crm-app  # attached on an earlier run
