#!/usr/bin/env bash
# Sandbox start-to-exec latency: a cold build of 20 chained `RUN` steps that
# do nothing (`RUN echo N >/n`), against the same build with no RUN step, for
# one or two engine binaries and each runtime. The difference divided by 20
# is what one RUN step costs, sandbox set-up and teardown included (overlay,
# namespaces, cgroup, slirp4netns, seccomp, layer diff of one small file).
#
#   benches/sandbox-latency.sh [--runs N] ENGINE [BASELINE_ENGINE]
#
# Prints a markdown table (ms per step) for RESULTS.md. Needs root,
# hyperfine, runc and crun (scripts/setup-host installs them).
set -euo pipefail
runs=10
if [ "${1:-}" = "--runs" ]; then runs=$2; shift 2; fi
engines=("$@")
[ "${#engines[@]}" -ge 1 ] || { echo "usage: $0 [--runs N] ENGINE [BASELINE_ENGINE]" >&2; exit 2; }
work=$(mktemp -d /var/tmp/engine-latency.XXXXXX)
trap 'rm -rf "$work"' EXIT

b="$work/busybox"
mkdir -p "$b/rootfs/bin" "$b/rootfs/etc" "$b/rootfs/tmp"
cp /bin/busybox "$b/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -s busybox "$b/rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$b/rootfs/etc/passwd"
printf 'FROM scratch\nCOPY rootfs/ /\n' >"$b/Dockerfile"
"${engines[0]}" build --progress quiet --cache-dir "$work/c0" \
  -o "type=oci,dest=$work/base,tar=false" -t busybox:latest "$b" >/dev/null

mkdir -p "$work/run20" "$work/run0"
{ echo 'FROM busybox'; for i in $(seq 1 20); do echo "RUN echo $i >/n"; done; } >"$work/run20/Dockerfile"
printf 'FROM busybox\nLABEL x=y\n' >"$work/run0/Dockerfile"

mean() { # engine runtime ctx -> mean seconds
  hyperfine --runs "$runs" --warmup 1 --export-json "$work/h.json" \
    --prepare "rm -rf $work/cache" \
    "$1 build --progress quiet --runtime $2 --cache-dir $work/cache --build-context busybox=oci-layout://$work/base $work/$3" >/dev/null 2>&1
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$work/h.json"
}

echo "| engine | runtime | 20 RUN steps (s) | no RUN (s) | per RUN step (ms) |"
echo "|---|---|---|---|---|"
for e in "${engines[@]}"; do
  for rt in builtin runc crun; do
    t20=$(mean "$e" "$rt" run20)
    t0=$(mean "$e" "$rt" run0)
    python3 -c 'import sys; e,rt,a,b=sys.argv[1:]; a=float(a); b=float(b); print(f"| {e} | {rt} | {a:.3f} | {b:.3f} | {(a-b)/20*1000:.1f} |")' "$e" "$rt" "$t20" "$t0"
  done
done
