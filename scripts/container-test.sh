#!/usr/bin/env bash
# Builds herald's container image from the Dockerfile and runs it the way a user would, offline: base images are
# made from a Debian bootstrap (a builder with this machine's Rust toolchain and the locked crates vendored, and a
# runtime with only glibc, libgcc_s, CA certificates and tzdata), so no registry is needed. Then, with a mounted
# configuration and a named volume, it checks: ready; an alert posted is delivered to a webhook receiver on
# loopback; the process runs as non-root; the HEALTHCHECK turns healthy; `docker stop` drains and exits 0 within
# the stop timeout; a new container on the same volume still has the alert; the image's own configuration serves;
# the image has no shell, a stripped binary and no HERALD__ environment.
#
# Needs root (apt-get, debootstrap, dockerd). Installs docker.io and debootstrap when missing, and starts a private
# dockerd (no bridge, no iptables; containers use the host network) when none answers; everything it started or made
# is removed at the end. Any missing piece fails the test loudly.
#
# Environment: DEBIAN_MIRROR (default: the first Debian mirror in /etc/apt/sources.list*, else deb.debian.org).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

suite=bookworm
stop_timeout=10
started=$SECONDS
phase_started=$SECONDS

say() { printf 'container-test: %s\n' "$*" >&2; }
fail() {
    say "FAILED: $*"
    exit 1
}
# Whether text $1 contains $2 (grep -q on a pipe would end the writer early, which pipefail counts as failure).
contains() { grep -q -F -- "$2" <<<"$1"; }
phase() {
    say "$1 ($((SECONDS - phase_started)) s)"
    phase_started=$SECONDS
}

[ "$(id -u)" -eq 0 ] || fail "needs root (apt-get, debootstrap, dockerd)"

# --- What the test needs from Debian.
packages=(docker.io debootstrap)
command -v python3 >/dev/null || packages+=(python3)
missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
for program in dockerd debootstrap python3 rustc cargo tar; do
    command -v "$program" >/dev/null || fail "$program is missing"
done
# Debian's client matches Debian's daemon; the classic builder runs the Dockerfile offline (--network none).
docker=$(command -v /usr/bin/docker || command -v docker) || fail "the docker client is missing"
export DOCKER_BUILDKIT=0

work=$(mktemp -d /var/tmp/herald-container-test.XXXXXX)
name="herald-ct-$$"
builder_image="$name-builder:$suite"
runtime_image="$name-runtime:$suite"
herald_image="$name:test"
build_image="$name-build:test"
volume="$name-data"
dockerd_pid=""
receiver_pid=""
own_images=()

cleanup() {
    local status=$?
    set +e
    [ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null && wait "$receiver_pid" 2>/dev/null
    if "$docker" version >/dev/null 2>&1; then
        for container in "$name-1" "$name-2" "$name-3"; do
            "$docker" rm -f -v "$container" >/dev/null 2>&1
        done
        "$docker" volume rm "$volume" >/dev/null 2>&1
        [ ${#own_images[@]} -gt 0 ] && "$docker" rmi -f "${own_images[@]}" >/dev/null 2>&1
    fi
    if [ -n "$dockerd_pid" ]; then
        kill -TERM "$dockerd_pid" 2>/dev/null || true
        for _ in $(seq 60); do
            kill -0 "$dockerd_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$dockerd_pid" 2>/dev/null
    fi
    # Whatever is still mounted under the work directory (a bootstrap or dockerd that was interrupted).
    grep -o " $work[^ ]*" /proc/mounts | sort -r | while read -r mount; do umount -l "$mount"; done
    rm -rf "$work"
    if [ "$status" -eq 0 ]; then
        say "passed in $((SECONDS - started)) s"
    else
        say "failed after $((SECONDS - started)) s"
    fi
}
trap cleanup EXIT

# --- dockerd: the running one, else a private one with its own data, sockets and no networking of its own.
if "$docker" version >/dev/null 2>&1; then
    say "using the running dockerd"
else
    mkdir -p "$work/docker"
    export DOCKER_HOST="unix://$work/docker/docker.sock"
    # dockerd now and then gives up waiting for its own containerd on a loaded machine: up to three tries.
    for attempt in 1 2 3; do
        dockerd --host "$DOCKER_HOST" --bridge=none --iptables=false --ip6tables=false \
            --data-root "$work/docker/data" --exec-root "$work/docker/exec" --pidfile "$work/docker/dockerd.pid" \
            >"$work/docker/dockerd.log" 2>&1 &
        dockerd_pid=$!
        for _ in $(seq 120); do
            "$docker" version >/dev/null 2>&1 && break
            kill -0 "$dockerd_pid" 2>/dev/null || break
            sleep 0.5
        done
        "$docker" version >/dev/null 2>&1 && break
        tail -20 "$work/docker/dockerd.log" >&2
        kill -TERM "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
        [ "$attempt" -lt 3 ] || fail "dockerd did not start (3 tries)"
        say "dockerd did not start (try $attempt); trying again"
    done
    say "started dockerd (pid $dockerd_pid)"
fi
phase "docker ready"

# --- Base images from a Debian bootstrap.
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    # deb822 `URIs:` lines and one-line `deb URI SUITE ...` entries; security mirrors carry only updates.
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '$1 == "URIs:" { print $2 } $1 == "deb" { print ($2 ~ /^\[/ ? $3 : $2) }' |
        grep -v -e security -e '^$' | grep '/debian/\?$' | head -n 1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
rootfs="$work/builder-root"
say "bootstrapping Debian $suite from $mirror"
debootstrap --variant=minbase --include=ca-certificates,tzdata,netbase,gcc,libc6-dev \
    "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    fail "debootstrap failed"
}
phase "Debian bootstrapped"

# The runtime: the files of the packages herald needs at run time, taken from the bootstrap, with /usr merged as
# in Debian (the packages name /lib, the files live in /usr/lib), plus users root and nonroot (65532).
runtime_root="$work/runtime-root"
mkdir -p "$runtime_root"
for list in base-files netbase tzdata ca-certificates libc6:amd64 libgcc-s1:amd64; do
    [ -f "$rootfs/var/lib/dpkg/info/$list.list" ] || fail "no file list for $list in the bootstrap"
done
(
    cd "$rootfs"
    {
        for list in base-files netbase tzdata ca-certificates libc6:amd64 libgcc-s1:amd64; do
            sed -E 's#^/(bin|sbin|lib|lib64)(/|$)#/usr/\1\2#' "var/lib/dpkg/info/$list.list"
        done | grep -v -E '^/usr/share/(doc|man|info|lintian|bug|common-licenses)(/|$)|^/\.$'
        printf '%s\n' /bin /sbin /lib /lib64 /etc/nsswitch.conf
        find etc/ssl/certs | sed 's#^#/#'
    } | sort -u | while read -r path; do
        # Files a package lists may since have been removed or diverted.
        if [ -e ".$path" ] || [ -L ".$path" ]; then printf '.%s\n' "$path"; fi
    done >"$work/runtime.files"
    tar --no-recursion -cf - -T "$work/runtime.files"
) | tar -xf - -C "$runtime_root"
[ -s "$runtime_root/etc/ssl/certs/ca-certificates.crt" ] || fail "the runtime has no CA bundle"
[ -e "$runtime_root/usr/lib/x86_64-linux-gnu/libc.so.6" ] || fail "the runtime has no glibc"
[ -e "$runtime_root/usr/lib/x86_64-linux-gnu/libgcc_s.so.1" ] || fail "the runtime has no libgcc_s"
[ -e "$runtime_root/usr/share/zoneinfo/Europe/Berlin" ] || fail "the runtime has no tzdata"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$runtime_root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$runtime_root/etc/group"
install -d -m 1777 "$runtime_root/tmp"
install -d -m 0700 -o 65532 -g 65532 "$runtime_root/home/nonroot"
tar -C "$runtime_root" -cf - . | "$docker" import - "$runtime_image" >/dev/null
own_images+=("$runtime_image")

# The builder: the bootstrap, this machine's Rust toolchain, and the crates of Cargo.lock vendored for offline use.
sysroot=$(rustc --print sysroot)
install -d "$rootfs/usr/local/rust/bin" "$rootfs/usr/local/cargo"
cp -a "$sysroot/bin/rustc" "$sysroot/bin/cargo" "$rootfs/usr/local/rust/bin/"
cp -a "$sysroot/lib" "$rootfs/usr/local/rust/"
cargo vendor --locked --quiet "$rootfs/usr/local/cargo/vendor" >/dev/null || fail "cargo vendor failed"
cat >"$rootfs/usr/local/cargo/config.toml" <<'TOML'
[source.crates-io]
replace-with = "vendored"

[source.vendored]
directory = "/usr/local/cargo/vendor"

[net]
offline = true
TOML
tar -C "$rootfs" -cf - . | "$docker" import \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' - "$builder_image" >/dev/null
own_images+=("$builder_image")
rm -rf "$rootfs" "$runtime_root"
in_image=$("$docker" run --rm --network none "$builder_image" rustc -V) || fail "rustc does not run in the builder"
[ "$in_image" = "$(rustc -V)" ] || fail "the builder has $in_image, this machine $(rustc -V)"
phase "base images made ($in_image)"

# --- herald's image, from the Dockerfile, without network.
# The build stage first, tagged so that it is removed at the end, then the image (the stage comes from the cache).
for target in build image; do
    if [ "$target" = build ]; then tag=(--target build -t "$build_image"); else tag=(-t "$herald_image"); fi
    "$docker" build --network none --build-arg "BUILDER=$builder_image" --build-arg "RUNTIME=$runtime_image" \
        "${tag[@]}" . >>"$work/build.log" 2>&1 || {
        tail -40 "$work/build.log" >&2
        fail "docker build failed"
    }
    own_images+=("${tag[-1]}")
done
phase "herald's image built"

# --- The image as built.
inspect() { "$docker" image inspect -f "$1" "$herald_image"; }
[ "$(inspect '{{.Config.User}}')" = "65532:65532" ] || fail "the image does not run as uid 65532"
contains "$(inspect '{{json .Config.Healthcheck.Test}}')" healthcheck || fail "the image has no HEALTHCHECK"
[ "$(inspect '{{.Config.StopSignal}}')" = "SIGTERM" ] || fail "the image's STOPSIGNAL is not SIGTERM"
contains "$(inspect '{{json .Config.Volumes}}')" '"/var/lib/herald"' || fail "/var/lib/herald is not a volume"
if contains "$(inspect '{{json .Config.Env}}')" 'HERALD__'; then
    fail "the image sets HERALD__ variables, which would override a mounted configuration"
fi
if "$docker" run --rm --network none --entrypoint /bin/sh "$herald_image" -c true >/dev/null 2>&1; then
    fail "the runtime image has a shell"
fi
"$docker" create --name "$name-1" "$herald_image" >/dev/null
"$docker" cp "$name-1:/usr/local/bin/herald" "$work/herald"
"$docker" rm "$name-1" >/dev/null
python3 - "$work/herald" <<'PY' || fail "the binary in the image is not stripped"
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\x7fELF" and data[4] == 2, "not a 64-bit ELF file"
shoff, = struct.unpack_from("<Q", data, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
def section(index):
    return struct.unpack_from("<IIQQQQ", data, shoff + index * shentsize)
names_offset = section(shstrndx)[4]
names = []
for index in range(shnum):
    start = names_offset + section(index)[0]
    names.append(data[start:data.index(b"\0", start)].decode())
left = [name for name in names if name == ".symtab" or name.startswith(".debug")]
if left:
    sys.exit(f"sections left: {left}")
PY
say "image: $(($(inspect '{{.Size}}') / 1000000)) MB, binary $(($(stat -c %s "$work/herald") / 1000000)) MB, stripped"

# --- A webhook receiver on loopback that keeps every body it is sent, and a small HTTP client.
cat >"$work/receiver.py" <<'PY'
import http.server, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "ab") as out:
            out.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
with open(sys.argv[1], "w") as out:
    out.write(str(server.server_address[1]))
server.serve_forever()
PY
cat >"$work/client.py" <<'PY'
import sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 else None
request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        sys.stdout.write(response.read().decode())
except urllib.error.HTTPError as error:
    sys.exit(f"{method} {url}: {error.code} {error.read().decode()}")
except OSError as error:
    sys.exit(f"{method} {url}: {error}")
PY
http() { python3 "$work/client.py" "$@"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Runs "$@" until it succeeds, at most $1 seconds.
within() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

python3 "$work/receiver.py" "$work/receiver.port" "$work/received" &
receiver_pid=$!
within 10 test -s "$work/receiver.port" || fail "the receiver did not start"
receiver_port=$(cat "$work/receiver.port")
port=$(free_port)
base="http://127.0.0.1:$port"
cat >"$work/herald.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  shutdown_timeout: 4s
storage:
  url: sqlite:///var/lib/herald/herald.db
delivery:
  drain_timeout: 4s
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:$receiver_port/hook
YAML
chmod 0644 "$work/herald.yaml"
"$docker" volume create "$volume" >/dev/null
run_herald() {
    # As deploy/compose.yaml runs it: read-only, without capabilities or privilege escalation.
    "$docker" run -d --name "$1" --network host --stop-timeout "$stop_timeout" \
        --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges:true \
        -v "$work/herald.yaml:/etc/herald/herald.yaml:ro" -v "$volume:/var/lib/herald" "$herald_image" >/dev/null
}
logs() { "$docker" logs "$1" 2>&1; }
ready_or_fail() {
    within 60 http GET "$base/-/ready" || {
        logs "$1" | tail -20 >&2
        fail "$1 did not become ready"
    }
}

# --- First container: ready, non-root, an alert delivered, healthy, a clean stop.
run_herald "$name-1"
ready_or_fail "$name-1"
pid=$("$docker" inspect -f '{{.State.Pid}}' "$name-1")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
[ "$uids" = "65532 65532 65532 65532" ] || fail "herald runs with uids $uids, not 65532"
phase "first container ready, running as uid 65532"

alert='[{"labels": {"alertname": "ContainerTest", "instance": "ct-1"}, "annotations": {"summary": "from the test"}}]'
http POST "$base/api/v2/alerts" "$alert" >/dev/null || fail "posting an alert failed"
delivered() { grep -q '"alertname":"ContainerTest"' "$work/received"; }
within 60 delivered || {
    logs "$name-1" | tail -20 >&2
    fail "the alert was not delivered to the receiver"
}
phase "alert delivered to the receiver"

healthy() { [ "$("$docker" inspect -f '{{.State.Health.Status}}' "$name-1")" = healthy ]; }
within 90 healthy || {
    "$docker" inspect -f '{{json .State.Health}}' "$name-1" >&2
    fail "the HEALTHCHECK did not turn healthy"
}
phase "HEALTHCHECK healthy"

stop_started=$(date +%s%N)
"$docker" stop -t "$stop_timeout" "$name-1" >/dev/null
stop_ms=$((($(date +%s%N) - stop_started) / 1000000))
exit_code=$("$docker" inspect -f '{{.State.ExitCode}}' "$name-1")
[ "$exit_code" = 0 ] || {
    logs "$name-1" | tail -20 >&2
    fail "herald exited $exit_code on docker stop"
}
[ "$stop_ms" -lt $((stop_timeout * 1000)) ] || fail "docker stop took $stop_ms ms, the stop timeout is ${stop_timeout} s"
log=$(logs "$name-1")
for line in "shutdown requested" "shutting down" "store closed"; do
    contains "$log" "$line" || {
        printf '%s\n' "$log" | tail -20 >&2
        fail "the log does not show \"$line\" on docker stop"
    }
done
phase "docker stop: exit 0 after $stop_ms ms, drained"

# --- A new container on the same volume has the alert and the delivery.
run_herald "$name-2"
ready_or_fail "$name-2"
contains "$(http GET "$base/api/v2/alerts")" '"alertname":"ContainerTest"' || fail "the alert did not survive the restart"
contains "$(http GET "$base/api/herald/v1/deliveries?state=delivered")" '"receiver":"hook"' ||
    fail "the delivery did not survive the restart"
"$docker" stop -t "$stop_timeout" "$name-2" >/dev/null
phase "second container on the volume has the alert and its delivery"

# --- The image's own configuration, in a network namespace of its own and a fresh anonymous volume.
"$docker" run -d --name "$name-3" --network none "$herald_image" >/dev/null
within 60 "$docker" exec "$name-3" /usr/local/bin/herald healthcheck || {
    logs "$name-3" | tail -20 >&2
    fail "herald on the image's configuration did not become ready"
}
contains "$(logs "$name-3")" 'address=0.0.0.0:9095' || fail "herald on the image's configuration does not listen on 0.0.0.0:9095"
phase "image configuration serves on 0.0.0.0:9095"
