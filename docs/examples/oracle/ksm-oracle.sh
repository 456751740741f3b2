#!/bin/sh
# A usage oracle for `houba purge --usage-oracle`: is any running container using this image?
#
# houba calls it once per image with one argument, `registry/repository@sha256:…`, and reads
# the exit code: 0 = in use (kept), 1 = unused (may be deleted), anything else = unknown (kept).
# It must only read.
#
# This one asks Prometheus for kube-state-metrics' `kube_pod_container_info`, whose `image_id`
# label is the digest the kubelet resolved (`registry/repository@sha256:…`, sometimes with a
# `docker-pullable://` prefix). An image is in use when any container, in any namespace,
# reports that digest. The digest alone is matched: the same content pulled through another
# name (a mirror, an alias tag) is still in use.
#
# Environment:
#   PROMETHEUS_URL   base URL of Prometheus (default http://prometheus.monitoring:9090)
#   ORACLE_TIMEOUT   seconds curl may take (default 10)
# Needs: curl, and jq or python3.
set -u

image=${1:?usage: ksm-oracle.sh registry/repository@sha256:...}
digest=${image##*@}
case "$digest" in
  sha256:????????????????????????????????????????????????????????????????) ;;
  *) echo "not a digest reference: $image"; exit 3 ;;
esac

url=${PROMETHEUS_URL:-http://prometheus.monitoring:9090}
query="count(kube_pod_container_info{image_id=~\".*${digest}\"}) or vector(0)"

answer=$(curl -fsS --max-time "${ORACLE_TIMEOUT:-10}" -G "$url/api/v1/query" \
  --data-urlencode "query=$query") || { echo "Prometheus did not answer"; exit 3; }

if command -v jq >/dev/null 2>&1; then
  status=$(printf '%s' "$answer" | jq -r '.status')
  count=$(printf '%s' "$answer" | jq -r '.data.result[0].value[1] // "0"')
else
  status=$(printf '%s' "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  count=$(printf '%s' "$answer" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "0")')
fi

# Anything but a successful, numeric answer is "unknown": houba then keeps the image.
[ "$status" = success ] || { echo "Prometheus query failed: $status"; exit 3; }
case "$count" in ''|*[!0-9]*) echo "unexpected answer: $count"; exit 3 ;; esac

if [ "$count" -gt 0 ]; then
  echo "in use by $count container(s)"
  exit 0
fi
echo "no running container uses $digest"
exit 1
