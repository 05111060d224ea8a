#!/usr/bin/env bash
# Builds the CPU image (Dockerfile) on a local Docker daemon, starts it the way it is meant to
# run (admin token as a mounted secret, ports published) and checks it from outside the
# container: user, health, a translation, /metrics, administration without, with a wrong and
# with the right token, start-up without the secret, SIGTERM drain. Prints the figures (build
# time, image size, layers, disk use inside) and a PASS/FAIL line per check; exit status 1 when
# any check failed. Takes many minutes (the build compiles the server): not part of ctest.
#
#   deploy/container_check.sh              (from the repository root, as root or a docker user)
#
# Environment (defaults in brackets):
#   IMAGE [mixserve:check]      tag to build and check
#   SKIP_BUILD [0]              1: check an IMAGE that is already built
#   CPU_SHARES [256]            docker build --cpu-shares (low priority on a shared machine)
#   BUILD_ARGS []               extra docker build arguments, e.g. "--build-arg MODELS=train"
#   GRPC_PORT [18500] METRICS_PORT [19500]   host ports (bound to 127.0.0.1)
#   MIXSERVE_CLI [build/clients/mixserve-cli if present, else the image's own in a second
#                 container on the host network; "image" forces the latter]   client used for
#                 every gRPC check
#   DRAIN_LINES [200]           sentences in flight (one TranslateStream) when SIGTERM comes
#   HEALTHY_TIMEOUT [300]       seconds to wait for the container to report healthy
#   KEEP [0]                    1: leave the container running afterwards
#   CONFIG []                   a server configuration to mount over the image's
#                               /etc/mixserve/server.pbtxt (e.g. one without admin_token_file:
#                               the administration checks then report it as open)
#   MIRROR [http://deb.debian.org/debian]   debootstrap mirror for the base images
#   NEW_BASE [0]                1: make the base images even when they exist (then nothing
#                               of the build is cached: a build from scratch)
#
# Base images: no image registry is needed. When debian:bookworm or debian:bookworm-slim is
# missing, both are made from Debian's packages with debootstrap (needs root and the
# debootstrap package): bookworm is a minbase system that keeps no .deb files after installs,
# bookworm-slim the same without apt lists
# and caches, documentation (copyright files kept), man pages and translations, with dpkg
# told to leave those out of later installs (what Debian's official slim image does).
set -uo pipefail

IMAGE=${IMAGE:-mixserve:check}
SKIP_BUILD=${SKIP_BUILD:-0}
CPU_SHARES=${CPU_SHARES:-256}
BUILD_ARGS=${BUILD_ARGS:-}
GRPC_PORT=${GRPC_PORT:-18500}
METRICS_PORT=${METRICS_PORT:-19500}
DRAIN_LINES=${DRAIN_LINES:-200}
HEALTHY_TIMEOUT=${HEALTHY_TIMEOUT:-300}
KEEP=${KEEP:-0}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
NEW_BASE=${NEW_BASE:-0}
CONFIG=${CONFIG:-}
NAME=mixserve-check-$$
SECRET_PATH=/run/secrets/mixserve-admin-token   # admin_token_file of server-container.pbtxt
GRACE=$(sed -n 's/^drain_grace_seconds: *\([0-9]*\).*/\1/p' "${CONFIG:-deploy/server-container.pbtxt}")
config_mount=()
if [ -n "$CONFIG" ]; then
  [ -r "$CONFIG" ] || { echo "container_check: cannot read CONFIG $CONFIG" >&2; exit 2; }
  config_mount=(-v "$(realpath "$CONFIG"):/etc/mixserve/server.pbtxt:ro")
fi

die() { echo "container_check: $*" >&2; exit 2; }
if [ ! -f Dockerfile ] || [ ! -f deploy/server-container.pbtxt ]; then
  die "run it from the repository root"
fi
[ -n "$GRACE" ] || die "no drain_grace_seconds in ${CONFIG:-deploy/server-container.pbtxt}"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (start one: dockerd >/tmp/dockerd.log 2>&1 &)"
command -v curl >/dev/null || die "curl is needed for the /metrics check"

work=$(mktemp -d /tmp/mixserve-container-check.XXXXXX)
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ "$KEEP" != 1 ]; then
    docker rm -f "$NAME" "$NAME-nosecret" >/dev/null 2>&1
    rm -rf "$work"
  fi
}
trap cleanup EXIT

results=()
failed=0
check() {  # check NAME ok|fail DETAIL
  local line
  if [ "$2" = ok ]; then line="PASS  $1: $3"; else line="FAIL  $1: $3"; failed=1; fi
  results+=("$line")
  echo "$line"
}
section() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
since_ms() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }

# ---- base images --------------------------------------------------------------------------
section "base images"
if [ "$NEW_BASE" != 1 ] && docker image inspect debian:bookworm debian:bookworm-slim >/dev/null 2>&1; then
  echo "debian:bookworm and debian:bookworm-slim present, not rebuilt"
else
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  t0=$(now)
  rootfs=$work/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; die "debootstrap failed"; }
  # As in Debian's official images: apt keeps no downloaded .deb files (else every
  # `apt-get install` layer carries them; 286 MB for the runtime packages).
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  rm -f "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | docker import - debian:bookworm >/dev/null || die "docker import failed"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
# Slim image: no documentation except copyright files, no man pages, no translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian/*
  find "$rootfs/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  tar -C "$rootfs" -c . | docker import - debian:bookworm-slim >/dev/null ||
    die "docker import failed"
  rm -rf "$rootfs"
  echo "made debian:bookworm and debian:bookworm-slim in $(since "$t0") s"
fi
docker image ls debian --format '{{.Repository}}:{{.Tag}}  {{.Size}}'

# ---- build --------------------------------------------------------------------------------
section "build $IMAGE"
if [ "$SKIP_BUILD" = 1 ]; then
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "SKIP_BUILD=1 but there is no image $IMAGE"
  echo "not rebuilt (SKIP_BUILD=1)"
else
  t0=$(now)
  # The classic builder: BuildKit would fetch the Dockerfile frontend from a registry.
  # shellcheck disable=SC2086  # BUILD_ARGS is a list of arguments
  if ! DOCKER_BUILDKIT=0 docker build --cpu-shares "$CPU_SHARES" $BUILD_ARGS -t "$IMAGE" . \
      >"$work/build.log" 2>&1; then
    tail -30 "$work/build.log"
    die "docker build failed (its last 30 lines above; with KEEP=1 the whole log stays in $work/build.log)"
  fi
  echo "build time: $(since "$t0") s"
fi
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "image size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.0f MB", s / 1e6 }'))"
echo "layers (docker history, non-empty):"
docker history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | grep -v '^0B' |
  cut -c1-150 | sed 's/^/  /'
echo "disk use inside (du -sh):"
docker run --rm --entrypoint du "$IMAGE" -sh /usr/lib/x86_64-linux-gnu /usr/local/bin \
  /usr/local/lib /opt/mixserve/models /usr/share /usr/bin /var 2>/dev/null | sed 's/^/  /'
echo "largest libraries:"
docker run --rm --entrypoint sh "$IMAGE" -c \
  'cd /usr/lib/x86_64-linux-gnu && du -a . | sort -n -r | sed -n "2,13p"' | sed 's/^/  /'

# ---- client ---------------------------------------------------------------------------------
printf '%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$work/admin-token"
chmod 0644 "$work/admin-token"   # read by uid 10001 inside; $work itself is 0700
printf 'not-the-token\n' >"$work/wrong-token"
if [ "${MIXSERVE_CLI:-}" = image ]; then
  MIXSERVE_CLI=""
elif [ -z "${MIXSERVE_CLI:-}" ] && [ -x build/clients/mixserve-cli ]; then
  MIXSERVE_CLI=build/clients/mixserve-cli
fi
cli() {  # cli [--token-file=admin-token|wrong-token] ARGS...  (token file names under $work)
  local tok=()
  case "${1:-}" in --token-file=*) tok=("$1"); shift ;; esac
  if [ -n "${MIXSERVE_CLI:-}" ]; then
    [ ${#tok[@]} -gt 0 ] && tok=("--token-file=$work/${tok[0]#--token-file=}")
    "$MIXSERVE_CLI" --target="127.0.0.1:$GRPC_PORT" "${tok[@]}" "$@"
  else
    [ ${#tok[@]} -gt 0 ] && tok=("--token-file=/check/${tok[0]#--token-file=}")
    docker run --rm -i --network host --user 0:0 -v "$work:/check:ro" \
      --entrypoint mixserve-cli "$IMAGE" --target="127.0.0.1:$GRPC_PORT" "${tok[@]}" "$@"
  fi
}
echo
echo "client: ${MIXSERVE_CLI:-mixserve-cli of $IMAGE in a second container, host network}"

# ---- start ----------------------------------------------------------------------------------
section "start $NAME (ports 127.0.0.1:$GRPC_PORT->8500, 127.0.0.1:$METRICS_PORT->9500)"
t0=$(now)
docker run -d --name "$NAME" -p "127.0.0.1:$GRPC_PORT:8500" -p "127.0.0.1:$METRICS_PORT:9500" \
  -v "$work/admin-token:$SECRET_PATH:ro" "${config_mount[@]}" "$IMAGE" >/dev/null ||
  die "docker run failed"

status=""
while :; do
  status=$(docker inspect --format '{{.State.Status}}/{{.State.Health.Status}}' "$NAME")
  case "$status" in
    running/healthy|exited/*|dead/*) break ;;
  esac
  if awk -v t="$(since "$t0")" -v m="$HEALTHY_TIMEOUT" 'BEGIN { exit !(t > m) }'; then break; fi
  sleep 2
done
if [ "$status" = running/healthy ]; then
  check healthy ok "docker reports healthy $(since "$t0") s after start"
else
  check healthy fail "state $status after $(since "$t0") s; last log lines:"
  docker logs --tail 20 "$NAME" 2>&1 | sed 's/^/    /'
fi

user=$(docker exec "$NAME" id -u 2>&1)
cfg_user=$(docker inspect --format '{{.Config.User}}' "$NAME")
if [ "$user" = 10001 ] && [ "$cfg_user" = 10001:10001 ]; then
  check user ok "runs as uid 10001 (image USER $cfg_user)"
else
  check user fail "id -u: '$user', image USER '$cfg_user' (expected 10001)"
fi

# ---- serving ------------------------------------------------------------------------------
section "serving, from the host"
out=$(cli health 2>&1); rc=$?
if [ $rc = 0 ]; then check health ok "$out"; else check health fail "exit $rc: $out"; fi

t0=$(now)
out=$(cli translate --from=en --to=de 'A man is riding a bike.' 2>&1); rc=$?
if [ $rc = 0 ] && [ -n "$out" ]; then
  check translate ok "en-de in $(since_ms "$t0") ms (client start included): $out"
else
  check translate fail "exit $rc: $out"
fi

metrics=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" 2>&1); rc=$?
loaded=$(grep -c '^mixserve_model_state{.*state="ready".*} 1' <<<"$metrics")
requests=$(grep -c '^mixserve_requests_total{' <<<"$metrics")
if [ $rc = 0 ] && [ "$loaded" -gt 0 ] && [ "$requests" -gt 0 ]; then
  check metrics ok "/metrics: $loaded ready model versions, $requests request series"
else
  check metrics fail "curl exit $rc, $loaded ready model versions, $requests request series"
fi

# ---- administration -----------------------------------------------------------------------
section "administration (ModelService), from the host: the peer is not loopback inside"
model=$(cli --token-file=admin-token models 2>&1 | awk -F'\t' '$4 == "MODEL_STATE_READY" { print $1; exit }')
refused() {  # refused NAME ARGS...: the call must fail with UNAUTHENTICATED or PERMISSION_DENIED
  local name=$1 out rc
  shift
  out=$(cli "$@" 2>&1); rc=$?
  if [ $rc != 0 ] && grep -qE 'UNAUTHENTICATED|PERMISSION_DENIED' <<<"$out"; then
    check "$name" ok "refused: $(head -1 <<<"$out")"
  elif [ $rc = 0 ]; then
    check "$name" fail "administration is open: '$*' succeeded without valid credentials"
  else
    check "$name" fail "exit $rc, not UNAUTHENTICATED/PERMISSION_DENIED: $out"
  fi
}
refused admin_list_no_token models
refused admin_load_no_token load "${model:-en-de-base}"
refused admin_load_wrong_token --token-file=wrong-token load "${model:-en-de-base}"
# The server must have seen a remote peer (loopback callers may be trusted by the server).
peer=$(docker logs "$NAME" 2>&1 | sed -n 's/.*admin call refused.* peer=\([^ ]*\).*/\1/p' | head -1)
case "$peer" in
  "") check admin_peer_remote fail "no 'admin call refused' line with a peer in the server log" ;;
  *127.0.0.1:*|*"[::1]"*) check admin_peer_remote fail "the server saw a loopback peer ($peer)" ;;
  *) check admin_peer_remote ok "the server logged the refused calls from $peer" ;;
esac
out=$(cli --token-file=admin-token models 2>&1); rc=$?
if [ $rc = 0 ] && [ -n "$model" ]; then
  check admin_list_token ok "$(wc -l <<<"$out") model versions listed, first ready: $model"
else
  check admin_list_token fail "exit $rc: $out"
fi
out=$(cli --token-file=admin-token load "$model" 2>&1); rc=$?
if [ $rc = 0 ]; then check admin_load_token ok "$out"; else check admin_load_token fail "exit $rc: $out"; fi

# Without the secret the server must refuse to start (administration never silently open).
docker run -d --name "$NAME-nosecret" "${config_mount[@]}" "$IMAGE" >/dev/null
code=$(timeout 60 docker wait "$NAME-nosecret" 2>/dev/null)
why=$(docker logs "$NAME-nosecret" 2>&1 | grep -m1 'admin_token_file')
if [ -n "$code" ] && [ "$code" != 0 ] && [ -n "$why" ]; then
  check no_secret_refuses_start ok "exit $code: ${why##*] }"
else
  check no_secret_refuses_start fail "exit '${code:-still running}', log: $(docker logs --tail 3 "$NAME-nosecret" 2>&1)"
fi
docker rm -f "$NAME-nosecret" >/dev/null 2>&1

# ---- SIGTERM drain --------------------------------------------------------------------------
section "SIGTERM drain: $DRAIN_LINES sentences in flight in one TranslateStream"
gzip -dc data/multi30k/test_2016_flickr.en.gz | head -n "$DRAIN_LINES" >"$work/drain.en"
# A window above the line count: every line is in flight at SIGTERM (the CLI's default window
# of 64 would still hold lines back, which a draining server then refuses, rightly).
cli translate --from=en --to=de --window=$((DRAIN_LINES * 2)) --file=/dev/stdin \
  <"$work/drain.en" >"$work/drain.de" 2>"$work/drain.err" &
client=$!
# SIGTERM once the server has sentences queued or in a batch (/metrics; at most 60 s).
for _ in $(seq 600); do
  busy=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk '/^mixserve_(queue_depth|inflight_sentences)[{ ]/ { s += $NF } END { print s + 0 }')
  [ "${busy:-0}" != 0 ] && break
  kill -0 $client 2>/dev/null || break
  sleep 0.1
done
t0=$(now)
docker kill --signal TERM "$NAME" >/dev/null
sleep 0.3
during=$(cli health 2>&1)
code=$(timeout $((GRACE + 30)) docker wait "$NAME")
stop_s=$(since "$t0")
wait $client; client_rc=$?
lines=$(wc -l <"$work/drain.de")
drain_log=$(docker logs "$NAME" 2>&1 | grep -E 'draining:|drain grace|stopped' | sed 's/^.*\] //')
inflight=$(sed -n 's/.*draining: \([0-9]*\) calls in flight.*/\1/p' <<<"$drain_log" | head -1)
echo "health right after SIGTERM: $(head -1 <<<"$during")"
echo "server log: $(tr '\n' ' ' <<<"$drain_log")"
if [ "$code" = 0 ] && [ "$client_rc" = 0 ] && [ "$lines" = "$DRAIN_LINES" ] &&
   [ "${inflight:-0}" -ge 1 ]; then
  check drain ok "exit 0 ${stop_s} s after SIGTERM (grace $GRACE s); in flight at SIGTERM (server log), all $lines translations came back"
elif [ "${inflight:-0}" = 0 ] && [ "$code" = 0 ]; then
  check drain fail "exit 0, but no call was in flight at SIGTERM (raise DRAIN_LINES): the drain was not exercised"
else
  check drain fail "exit '${code:-timeout}' after ${stop_s} s, client exit $client_rc with $lines of $DRAIN_LINES translations: $(tail -2 "$work/drain.err")"
fi

# ---- summary --------------------------------------------------------------------------------
section "summary ($IMAGE)"
printf '%s\n' "${results[@]}"
if [ $failed = 0 ]; then echo "all checks passed"; else echo "some checks FAILED"; fi
exit $failed
