#!/usr/bin/env bash
# Build the hook image from the repository's Dockerfile and run both of its containers' commands
# from it, on a machine without any container registry or cgroup-capable container runtime.
#
#   bash .ci/image.sh build    # make image:       the image, tagged $IMAGE (with docker where
#                              #                   podman is missing and docker is there)
#   bash .ci/image.sh check    # make image-check: build, then run `serve` and `busy` from it
#
# The Dockerfile's base, debian:bookworm-slim, is made here from Debian's own packages
# (mmdebstrap --variant=minbase, cached under ~/.cache/obol-image for a week) and imported under
# that name, so the Dockerfile is the one `docker build .` uses elsewhere, unchanged. The build
# runs with `podman build --isolation chroot`; pip inside it gets this machine's CA bundle at a
# side path (PIP_CERT), for networks that inspect TLS, without touching the image's own bundle.
#
# The check mounts the built image's root filesystem and runs each container's command (the
# image's ENTRYPOINT with the Deployment's args, its environment, as its USER 10001) in a new
# mount and PID namespace, chrooted, on a read-only root with a fresh tmpfs on /tmp for `serve`
# and none for `busy` (as metacontroller/deployment.yaml mounts an emptyDir only there), on this
# machine's loopback; then asks /readyz of both, one POST /sync (a hand-written fixture) and one
# busy 429, and stops both with SIGTERM, which must end them with status 0.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/serviceoffer-hook:dev}
BASE=docker.io/library/debian:bookworm-slim
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/obol-image
ROOTFS=$CACHE/debian-bookworm-minbase.tar
HOST_CA=/etc/ssl/certs/ca-certificates.crt
FIXTURE=tests/fixtures/sync/01-full-envelope-new-offer.json

say() { printf 'image: %s\n' "$*" >&2; }

tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

base() {
  mkdir -p "$CACHE"
  if [[ ! -s $ROOTFS || -n $(find "$ROOTFS" -mtime +7) ]]; then
    say "making the Debian bookworm base (mmdebstrap --variant=minbase)"
    mmdebstrap --quiet --variant=minbase --format=tar bookworm "$ROOTFS.part" http://deb.debian.org/debian
    mv "$ROOTFS.part" "$ROOTFS"
  fi
  local imported
  imported=$(podman image inspect --format '{{index .Labels "obol.rootfs"}}' "$BASE" 2>/dev/null || true)
  local stamp
  stamp=$(stat -c %Y "$ROOTFS")
  if [[ $imported != "$stamp" ]]; then
    say "importing the base as $BASE"
    podman import --quiet --change "LABEL obol.rootfs=$stamp" --change 'CMD ["bash"]' \
      "$ROOTFS" "$BASE" >/dev/null
  fi
}

build() {
  if [[ ${1:-} != check ]] && ! command -v podman >/dev/null && command -v docker >/dev/null; then
    say "building $IMAGE with docker (the registry's debian:bookworm-slim)"
    docker build --tag "$IMAGE" .
    return
  fi
  tools
  base
  local ca=()
  if [[ -s $HOST_CA ]]; then
    ca=(--volume "$HOST_CA:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
  fi
  say "building $IMAGE (podman build --isolation chroot)"
  podman build --quiet --isolation chroot --pull=never "${ca[@]}" --tag "$IMAGE" . >/dev/null
  podman image prune --force >/dev/null # the previous build's layers, now untagged
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_command ROOT LOG TMP ARG VAR=VALUE...: the image's entrypoint with ARG, as the image's
# user, in its own mount and PID namespace on a read-only root (with a fresh /tmp when TMP is
# "tmpfs"); sets STARTED to the unshare PID.
run_command() {
  local root=$1 log=$2 tmp=$3 arg=$4
  shift 4
  local user entrypoint env
  user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
  entrypoint=$(podman image inspect --format '{{join .Config.Entrypoint " "}}' "$IMAGE")
  mapfile -t env < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
  unshare --mount --pid --fork --kill-child sh -ec '
    root=$1 tmp=$2; shift 2
    mount --make-rprivate /
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -o remount,bind,ro "$root"
    if [ "$tmp" = tmpfs ]; then mount -t tmpfs -o size=64m,mode=1777 tmpfs "$root/tmp"; fi
    exec "$@"
  ' sh "$root" "$tmp" chroot --userspec="$user" "$root" /usr/bin/env -i "${env[@]}" "$@" \
    $entrypoint "$arg" >"$log" 2>&1 &
  STARTED=$!
}

wait_ready() {
  local url=$1 pid=$2 log=$3
  for _ in $(seq 150); do
    if curl -fsS -m 1 "$url/readyz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.2
  done
  say "$url never answered /readyz:"; cat "$log" >&2; return 1
}

server_pids() { # the processes in the PID namespace unshare started
  local ns_child
  ns_child=$(cat "/proc/$1/task/$1/children")
  echo "$ns_child" $(cat /proc/"$ns_child"/task/*/children 2>/dev/null)
}

check() {
  build check
  local root sync_port busy_port failed=0
  root=$(podman image mount "$IMAGE")
  WORK=$(mktemp -d) SYNC_PID='' BUSY_PID=''
  trap 'kill $SYNC_PID $BUSY_PID 2>/dev/null || true; wait 2>/dev/null || true; podman image unmount "$IMAGE" >/dev/null; rm -rf "$WORK"' EXIT
  local work=$WORK
  sync_port=$(free_port)
  busy_port=$(free_port)
  run_command "$root" "$work/sync.log" tmpfs serve "OBOL_BIND=127.0.0.1:$sync_port" "OBOL_BUSY_PORT=$busy_port"
  SYNC_PID=$STARTED
  run_command "$root" "$work/busy.log" none busy "OBOL_BUSY_BIND=127.0.0.1:$busy_port"
  BUSY_PID=$STARTED
  local sync_pid=$SYNC_PID busy_pid=$BUSY_PID
  wait_ready "http://127.0.0.1:$sync_port" "$sync_pid" "$work/sync.log"
  wait_ready "http://127.0.0.1:$busy_port" "$busy_pid" "$work/busy.log"

  sleep 3 # idle, then the memory both containers' processes hold (shared pages split among them)
  local pss_kib=0
  for pid in $(server_pids "$sync_pid") $(server_pids "$busy_pid"); do
    pss_kib=$((pss_kib + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")))
  done
  say "idle PSS of both containers' processes: $((pss_kib / 1024)) MiB"
  for pid in $(server_pids "$sync_pid") $(server_pids "$busy_pid"); do
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
    [[ $uid == 10001 ]] || { say "process $pid runs as uid $uid, not 10001"; failed=1; }
  done
  for pid in $sync_pid $busy_pid; do
    awk '$5 == "/" {print $6}' "/proc/$(server_pids "$pid" | cut -d' ' -f1)/mountinfo" | grep -q '^ro' ||
      { say "a server's root filesystem is not read-only"; failed=1; }
  done

  local answer status
  answer=$(curl -sS -m 10 -o "$work/sync.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$FIXTURE" "http://127.0.0.1:$sync_port/sync")
  if [[ $answer != 200 ]] || ! grep -q '"kind":"HTTPRoute"' "$work/sync.json"; then
    say "POST /sync answered $answer:"; head -c 500 "$work/sync.json" >&2; failed=1
  fi
  status=$(curl -sS -m 5 -D "$work/busy.head" -o "$work/busy.json" -w '%{http_code}' \
    "http://127.0.0.1:$busy_port/busy/llm-sellers/qwen36-fast?retryAfter=3")
  if [[ $status != 429 ]] || ! grep -qi '^retry-after: 3' "$work/busy.head"; then
    say "the busy responder answered $status:"; cat "$work/busy.head" "$work/busy.json" >&2; failed=1
  fi

  for pid in $(server_pids "$sync_pid" | cut -d' ' -f1) $(server_pids "$busy_pid" | cut -d' ' -f1); do
    kill -TERM "$pid"
  done
  for pid in $sync_pid $busy_pid; do
    if ! wait "$pid"; then say "a server did not stop cleanly on SIGTERM"; failed=1; fi
  done
  SYNC_PID='' BUSY_PID=
  if ((failed)); then
    say "FAILED"; cat "$work/sync.log" "$work/busy.log" >&2; return 1
  fi
  say "ok: $IMAGE runs serve and busy as uid 10001 on a read-only root: /readyz, POST /sync 200, busy 429 with Retry-After"
}

case ${1:-} in
  build) build ;;
  check) check ;;
  *) echo "usage: $0 build|check" >&2; exit 2 ;;
esac
