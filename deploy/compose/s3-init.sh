#!/bin/sh
# s3-init.sh -- run once per `docker compose up` by the s3-init service (MinIO's mc image): in the
# local S3 server, create the bucket of PIXFLOW_RAW_URL and the user AWS_ACCESS_KEY_ID, allowed to
# list that bucket and to read and write objects under its prefix (what pixflow-consumer, `pixflow
# get --original`, `pixflow verify --raw` and the console need), nothing else. Every step is a
# no-op when already done. Originals kept elsewhere (another PIXFLOW_S3_ENDPOINT): nothing to do.
set -eu

local_endpoint=http://s3:9000 # the s3 service of docker-compose.yml

case "$PIXFLOW_RAW_URL" in
s3://?*) ;;
*)
    # A directory store would need a volume shared by every consumer, which this file has not.
    echo "s3-init: PIXFLOW_RAW_URL must be s3://BUCKET[/PREFIX] here, not '$PIXFLOW_RAW_URL'" >&2
    exit 1
    ;;
esac
if [ "$PIXFLOW_S3_ENDPOINT" != "$local_endpoint" ]; then
    echo "s3-init: originals go to $PIXFLOW_S3_ENDPOINT, not the local s3 service: nothing to do"
    exit 0
fi
if [ "$AWS_ACCESS_KEY_ID" = "$MINIO_ROOT_USER" ]; then
    echo "s3-init: AWS_ACCESS_KEY_ID must differ from MINIO_ROOT_USER (the programs' own user)" >&2
    exit 1
fi

path=${PIXFLOW_RAW_URL#s3://}
bucket=${path%%/*}
prefix=${path#"$bucket"}
prefix=${prefix#/}

tries=0
until mc alias set local "$local_endpoint" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        echo "s3-init: $local_endpoint refused the root user after $tries attempts" >&2
        exit 1
    fi
    echo "s3-init: attempt $tries failed, retrying in 2 s" >&2
    sleep 2
done

mc mb --ignore-existing "local/$bucket"

# HEAD of the bucket (the programs' start-up check) needs s3:ListBucket; HEAD, GET and PUT of an
# object need s3:GetObject and s3:PutObject. No delete: retention is the bucket's lifecycle rule.
policy=/tmp/pixflow-raw.json
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
     "Resource": ["arn:aws:s3:::$bucket"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
     "Resource": ["arn:aws:s3:::$bucket/${prefix:+$prefix/}*"]}
  ]
}
JSON
mc admin policy create local pixflow-raw "$policy"
# Adding an existing user sets its secret: .env stays the one place it is set.
mc admin user add local "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
mc admin policy attach local pixflow-raw --user "$AWS_ACCESS_KEY_ID"
echo "s3-init: bucket $bucket ready; $AWS_ACCESS_KEY_ID may read and write ${prefix:-all of it}"
