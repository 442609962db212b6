#!/usr/bin/env bash
# Comparative benchmark: builds the same workloads with `engine`, BuildKit
# (`DOCKER_BUILDKIT=1 /usr/bin/docker build`, Debian's docker.io) and
# `buildah bud`, in one run, and prints a table of wall-clock times with the
# engine/BuildKit and engine/buildah ratios. Unless --no-write is given, the
# same table, the command line, the date and the machine's facts replace the
# generated section of benches/RESULTS.md.
#
#   benches/compare.sh [--runs N] [--only ROWS] [--no-write] [--keep]
#
#   --runs N     timed runs per row and tool (default 3)
#   --only ROWS  comma-separated subset of: mono,wait,ctx,big (default: all)
#   --no-write   do not touch benches/RESULTS.md
#   --keep       keep the work directory (printed at the start)
#   --settle S   before each tool's series of runs, and after each cold
#                reset, sync and wait S seconds (default 0; 65 outlasts
#                ext4's 60-second "recently deleted inode" window, see below)
#
# ENGINE=PATH uses that engine binary instead of building target/release/engine
# from this checkout; ENGINE_REV=TEXT then names its source in RESULTS.md.
#
# Needs root (dockerd, buildah, the engine's sandbox). Installs hyperfine and
# GNU time from Debian if they are missing, and runs scripts/setup-host when
# dockerd is not up. The workloads are generated into a fresh directory under
# ${TMPDIR:-/var/tmp}; the Dockerfiles are in benches/workloads/.
#
# Method (the same for every tool):
# - wall-clock by hyperfine; "cold" rows clear that tool's build cache before
#   every timed run (engine: a fresh --cache-dir; BuildKit: `docker builder
#   prune -af` and the bench images removed; buildah: every image in its
#   private storage removed, then the base image pulled again from the OCI
#   layout), untimed;
# - no-op rows run once untimed first (warm cache), then N timed runs;
# - one-file-edit rows append a line to one context file before every run
#   (untimed), so each timed run rebuilds after a real edit;
# - the page cache is never dropped: all tools read a warm page cache;
# - parallelism: engine's default (every ready step at once since 246f52b;
#   -j = cores before), BuildKit's default (unbounded), buildah `--jobs` =
#   cores (its default, 1, builds stages one after another);
# - peak RSS of `engine` is /usr/bin/time's "maximum resident set size" of
#   the engine process (RUN steps run in child processes, whose RSS
#   getrusage also folds in when larger), the maximum over the timed runs.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
runs=3
only="mono,wait,ctx,big"
write=1
keep=0
settle=0
orig_args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --no-write) write=0; shift ;;
    --keep) keep=1; shift ;;
    --settle) settle="$2"; shift 2 ;;
    -h|--help) sed -n '2,44p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
want() { [[ ",$only," == *",$1,"* ]]; }

if [ "$(id -u)" -ne 0 ]; then
  echo "compare.sh: needs root (dockerd, buildah and the engine sandbox)" >&2
  exit 1
fi
DOCKER=/usr/bin/docker
if ! command -v hyperfine >/dev/null || [ ! -x /usr/bin/time ]; then
  echo "compare.sh: installing hyperfine and time" >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq hyperfine time >/dev/null \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq hyperfine time >/dev/null; }
fi
if ! $DOCKER version >/dev/null 2>&1 || ! command -v buildah >/dev/null || [ ! -x /bin/busybox ]; then
  "$repo/scripts/setup-host"
fi

if [ -n "${ENGINE:-}" ]; then
  ENGINE="$(realpath "$ENGINE")"
  echo "== engine: $ENGINE (from \$ENGINE)" >&2
else
  echo "== building engine (release)" >&2
  (cd "$repo" && cargo build --release -p engine-cli --quiet)
  target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)"
  ENGINE="$target_dir/release/engine"
fi
cores="$(nproc)"

# Lowercase on purpose: buildah names an image pulled from oci:DIR after DIR.
work="${TMPDIR:-/var/tmp}/engine-bench.$(date +%Y%m%d%H%M%S).$$"
mkdir "$work"
cleanup() {
  buildah --root "$work/buildah/root" --runroot "$work/buildah/run" rm -a >/dev/null 2>&1 || true
  buildah --root "$work/buildah/root" --runroot "$work/buildah/run" rmi -a -f >/dev/null 2>&1 || true
  $DOCKER rmi -f bench/monorepo bench/waiting bench/bigctx bench/bigwrite >/dev/null 2>&1 || true
  if [ "$keep" -eq 0 ]; then
    umount -R "$work/buildah/root/overlay" >/dev/null 2>&1 || true
    rm -rf "$work" 2>/dev/null || echo "compare.sh: could not remove all of $work" >&2
  fi
}
trap cleanup EXIT
echo "== work directory: $work" >&2
mkdir -p "$work"/{bin,ctx,out,res,buildah}

# ---------------------------------------------------------------- base image
# busybox, made by the engine itself (no registry here), given to each tool.
echo "== base image (busybox-static)" >&2
b="$work/ctx/busybox"
mkdir -p "$b/rootfs/bin" "$b/rootfs/etc" "$b/rootfs/tmp" "$b/rootfs/root"
cp /bin/busybox "$b/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -s busybox "$b/rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$b/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$b/rootfs/etc/group"
printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n' >"$b/Dockerfile"
"$ENGINE" build --progress quiet --cache-dir "$work/engine-base-cache" \
  -o "type=oci,dest=$work/base,tar=false" \
  -o "type=docker,dest=$work/busybox.tar,name=busybox:latest" "$b" >/dev/null
$DOCKER load -i "$work/busybox.tar" >/dev/null
BUILDAH=(buildah --root "$work/buildah/root" --runroot "$work/buildah/run")
buildah_pull_base() {
  "${BUILDAH[@]}" pull -q "oci:$work/base" >"$work/buildah/base.id"
  "${BUILDAH[@]}" tag "$(cat "$work/buildah/base.id")" busybox:latest
}
buildah_pull_base
# buildah's RUN isolation: OCI with runc (what dockerd runs) when that works
# here, else OCI with buildah's default runtime (crun, which refuses hybrid
# cgroup hosts), else chroot.
printf 'FROM busybox\nRUN echo ok >/ok\n' >"$work/ctx/probe.Dockerfile"
isolation=""
for iso in "oci --runtime runc" "oci" "chroot"; do
  # shellcheck disable=SC2086
  if "${BUILDAH[@]}" bud --pull=never --isolation $iso -f "$work/ctx/probe.Dockerfile" "$work/ctx" >>"$work/buildah/probe.log" 2>&1; then
    isolation="$iso"
    break
  fi
done
if [ -z "$isolation" ]; then
  echo "compare.sh: buildah cannot build here, see $work/buildah/probe.log" >&2
  keep=1
  exit 1
fi
echo "== buildah isolation: $isolation" >&2

# ----------------------------------------------------------------- workloads
gen_files() { # DIR COUNT SIZE SEED: COUNT files of SIZE bytes, 100 per directory
  local dir="$1" count="$2" size="$3" seed="$4" i d line body
  for ((i = 0; i < count; i++)); do
    d="$dir/d$(printf %03d $((i / 100)))"
    ((i % 100 == 0)) && mkdir -p "$d"
    line="$seed file $i of the benchmark context"
    body=""
    while [ "${#body}" -lt "$size" ]; do body+="$line"$'\n'; done
    printf '%s' "${body:0:size}" >"$d/f$(printf %04d $((i % 100))).txt"
  done
}
gen_flat() { # DIR COUNT SIZE SEED: COUNT files of SIZE bytes directly in DIR
  local dir="$1" count="$2" size="$3" seed="$4" i line body
  mkdir -p "$dir"
  for ((i = 1; i <= count; i++)); do
    line="$seed source $i of the monorepo"
    body=""
    while [ "${#body}" -lt "$size" ]; do body+="$line"$'\n'; done
    printf '%s' "${body:0:size}" >"$dir/src$i.txt"
  done
}
echo "== generating workloads" >&2
mono="$work/ctx/monorepo"
mkdir -p "$mono/shared"
cp "$here/workloads/monorepo.Dockerfile" "$mono/Dockerfile"
gen_flat "$mono/shared" 20 4096 shared
for s in $(seq 1 8); do gen_flat "$mono/services/svc$s" 100 4096 "svc$s"; done
waiting="$work/ctx/waiting"
mkdir -p "$waiting/shared"
cp "$here/workloads/waiting.Dockerfile" "$waiting/Dockerfile"
gen_flat "$waiting/shared" 20 4096 shared
for s in $(seq 1 8); do gen_flat "$waiting/services/svc$s" 50 1024 "svc$s"; done
ctx="$work/ctx/bigctx"
mkdir -p "$ctx"
cp "$here/workloads/bigctx.Dockerfile" "$ctx/Dockerfile"
gen_files "$ctx" 20000 1024 ctx
edit_file="$ctx/d000/f0000.txt"
big="$work/ctx/bigwrite"
mkdir -p "$big"
cp "$here/workloads/bigwrite.Dockerfile" "$big/Dockerfile"

# ------------------------------------------------------- per-tool commands
# bin/<tool>-build WORKLOAD [EXPORT] and bin/<tool>-reset WORKLOAD.
cat >"$work/bin/engine-build" <<EOF
#!/usr/bin/env bash
set -e
out=()
case "\${2:-}" in
  export) out=(-o "type=oci,dest=$work/out/engine-\$1.tar") ;;
  export-raw) out=(-o "type=oci,dest=$work/out/engine-\$1.tar,compression=uncompressed") ;;
  export-zstd) out=(-o "type=oci,dest=$work/out/engine-\$1.tar,compression=zstd") ;;
esac
exec /usr/bin/time -f %M -a -o "$work/res/rss-\${ROW:-none}" \\
  "$ENGINE" build --progress plain --cache-dir "$work/engine-cache-\$1" \\
  --build-context busybox=oci-layout://$work/base "\${out[@]}" "$work/ctx/\$1" >"$work/res/last-engine.log" 2>&1
EOF
cat >"$work/bin/engine-reset" <<EOF
#!/usr/bin/env bash
rm -rf "$work/engine-cache-\$1"
EOF
cat >"$work/bin/buildkit-build" <<EOF
#!/usr/bin/env bash
set -e
DOCKER_BUILDKIT=1 $DOCKER build --progress plain -t "bench/\$1" "$work/ctx/\$1" >"$work/res/last-buildkit.log" 2>&1
# dockerd 20.10's BuildKit has no oci exporter: save the built image instead
# (a docker-archive tar, layers uncompressed).
if [ -n "\${2:-}" ]; then
  $DOCKER save -o "$work/out/buildkit-\$1.tar" "bench/\$1"
fi
EOF
cat >"$work/bin/buildkit-reset" <<EOF
#!/usr/bin/env bash
$DOCKER rmi -f "bench/\$1" >/dev/null 2>&1 || true
$DOCKER builder prune -af >/dev/null
EOF
cat >"$work/bin/buildah-build" <<EOF
#!/usr/bin/env bash
set -e
b=(${BUILDAH[*]})
"\${b[@]}" bud --pull=never --layers --jobs $cores --isolation $isolation -t "bench/\$1" "$work/ctx/\$1" >"$work/res/last-buildah.log" 2>&1
if [ -n "\${2:-}" ]; then
  rm -f "$work/out/buildah-\$1.tar"
  d=()
  [ "\$2" = export-raw ] && d=(--disable-compression)
  [ "\$2" = export-zstd ] && d=(--compression-format zstd)
  "\${b[@]}" push -q "\${d[@]}" "bench/\$1" "oci-archive:$work/out/buildah-\$1.tar" >>"$work/res/last-buildah.log" 2>&1
fi
EOF
cat >"$work/bin/buildah-reset" <<EOF
#!/usr/bin/env bash
b=(${BUILDAH[*]})
"\${b[@]}" rm -a >/dev/null 2>&1 || true
"\${b[@]}" rmi -a -f >/dev/null 2>&1 || true
"\${b[@]}" pull -q "oci:$work/base" >"$work/buildah/base.id"
"\${b[@]}" tag "\$(cat "$work/buildah/base.id")" busybox:latest
EOF
cat >"$work/bin/edit" <<EOF
#!/usr/bin/env bash
printf 'edit %s\n' "\$(date +%s%N)" >>"$edit_file"
EOF
chmod +x "$work"/bin/*

# ------------------------------------------------------------------ running
tools=(engine buildkit buildah)
rows=()
declare -A label target mean sd rss load sizes
# row ID LABEL TARGET WORKLOAD KIND [EXPORT]; KIND: cold | noop | edit
row() {
  local id="$1" lab="$2" tgt="$3" wl="$4" kind="$5" exp="${6:-}" t args
  rows+=("$id")
  label[$id]="$lab"
  target[$id]="$tgt"
  load[$id]="$(cut -d' ' -f1-3 /proc/loadavg)"
  : >"$work/res/rss-$id"
  for t in "${tools[@]}"; do
    echo "== $lab: $t" >&2
    sync
    sleep "$settle"
    args=(--runs "$runs" --style basic --export-json "$work/res/$id-$t.json" --command-name "$t")
    case "$kind" in
      cold) args+=(--prepare "$work/bin/$t-reset $wl; sync; sleep $settle") ;;
      noop) args+=(--warmup 1 --prepare sync) ;;
      edit) args+=(--prepare "$work/bin/edit; sync") ;;
    esac
    if ROW="$id" hyperfine "${args[@]}" "$work/bin/$t-build $wl $exp" >&2; then
      mean[$id,$t]="$(jq -r '.results[0].mean' "$work/res/$id-$t.json")"
      sd[$id,$t]="$(jq -r '.results[0].stddev // 0' "$work/res/$id-$t.json")"
    else
      echo "compare.sh: $t failed on $lab; its last log:" >&2
      tail -n 20 "$work/res/last-$t.log" >&2 || true
      mean[$id,$t]=fail
      sd[$id,$t]=0
    fi
    cp "$work/res/last-$t.log" "$work/res/$id-$t.log" 2>/dev/null || true
    if [ -n "$exp" ] && [ -f "$work/out/$t-$wl.tar" ]; then
      sizes[$id]+="${sizes[$id]:+, }$t $(($(stat -c %s "$work/out/$t-$wl.tar") / 1048576)) MiB"
    fi
  done
  rss[$id]="$(sort -n "$work/res/rss-$id" | tail -n 1)"
}

# Warm rows run before cold ones: a cold row deletes each tool's cache, and
# on this ext4 (no journal) creating files soon after mass deletions is slow
# (the inode allocator skips recently deleted inodes), which would charge the
# next row for the previous row's clean-up. Each no-op row's untimed warmup
# run is that workload's first (cold) build.
if want mono; then
  row mono-noop "2. monorepo, no-op rebuild" "≤ 0.5" monorepo noop
  row mono-cold "1. monorepo, cold" "≤ 1.0" monorepo cold
fi
if want wait; then
  row wait-noop "6. monorepo with waiting steps, no-op rebuild" "≤ 0.2" waiting noop
  row wait-cold "5. monorepo with waiting steps, cold" "≤ 0.5" waiting cold
fi
if want ctx; then
  row ctx-noop "3b. 20k-file context, no-op rebuild" "≤ 0.5" bigctx noop
  row ctx-edit "3c. 20k-file context, one-file edit" "≤ 0.5" bigctx edit
  row ctx-cold "3a. 20k-file context, cold" "≤ 1.0" bigctx cold
fi
if want big; then
  row big-cold "4. RUN writing 512 MiB → OCI tar (gzip), cold" "≤ 1.0" bigwrite cold export
  row big-raw "4u. RUN writing 512 MiB → OCI tar (uncompressed), cold" "≤ 1.0" bigwrite cold export-raw
  row big-zstd "4z. RUN writing 512 MiB → OCI tar (zstd), cold" "≤ 0.3" bigwrite cold export-zstd
fi

# -------------------------------------------------------------------- table
fmt_time() { # MEAN SD
  [ "$1" = fail ] && { echo "failed"; return; }
  awk -v m="$1" -v s="$2" 'BEGIN { printf "%.2f s ± %.2f", m, s }'
}
ratio() { # A B
  { [ "$1" = fail ] || [ "$2" = fail ]; } && { echo "–"; return; }
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}
verdict() { # RATIO TARGET
  [ "$1" = "–" ] && { echo "–"; return; }
  awk -v r="$1" -v t="${2#≤ }" 'BEGIN { print (r <= t ? "met" : "missed") }'
}
table="$work/res/table.md"
{
  echo "| workload | engine | BuildKit | buildah | engine/BuildKit | engine/buildah | target (engine/BuildKit) | | engine peak RSS | load avg before |"
  echo "|---|---:|---:|---:|---:|---:|---|---|---:|---|"
  for id in mono-cold mono-noop wait-cold wait-noop ctx-cold ctx-noop ctx-edit big-cold big-raw big-zstd; do
    [ -n "${label[$id]:-}" ] || continue
    rb="$(ratio "${mean[$id,engine]}" "${mean[$id,buildkit]}")"
    rh="$(ratio "${mean[$id,engine]}" "${mean[$id,buildah]}")"
    r="${rss[$id]:-}"
    [ -n "$r" ] && r="$((r / 1024)) MiB"
    echo "| ${label[$id]} | $(fmt_time "${mean[$id,engine]}" "${sd[$id,engine]}") | $(fmt_time "${mean[$id,buildkit]}" "${sd[$id,buildkit]}") | $(fmt_time "${mean[$id,buildah]}" "${sd[$id,buildah]}") | $rb | $rh | ${target[$id]} | $(verdict "$rb" "${target[$id]}") | $r | ${load[$id]} |"
  done
} >"$table"
echo
cat "$table"
if [ -n "${rss[big-cold]:-}" ]; then
  mib=$((rss[big-cold] / 1024))
  echo
  echo "engine peak RSS on row 4: $mib MiB (target: under 300 MiB: $([ "$mib" -lt 300 ] && echo met || echo missed))"
fi

# ------------------------------------------------------------- RESULTS.md
if [ "$write" -eq 1 ]; then
  results="$here/RESULTS.md"
  if [ -n "${ENGINE_REV:-}" ]; then
    rev="$ENGINE_REV" dirty=""
  else
    rev="$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    dirty="$(cd "$repo" && git status --porcelain 2>/dev/null | grep -q . && echo ", with uncommitted changes" || true)"
  fi
  gen="$work/res/generated.md"
  {
    echo "<!-- compare.sh:begin (generated by benches/compare.sh; edit outside these markers) -->"
    envs=""
    [ -n "${ENGINE_REV:-}" ] && envs="ENGINE=… ENGINE_REV='$ENGINE_REV' "
    echo "Command: \`${envs}benches/compare.sh${orig_args[*]:+ ${orig_args[*]}}\` (as root, from the repository root)"
    echo
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); mean ± standard deviation of $runs timed runs per cell."
    echo
    cat "$table"
    echo
    if [ -n "${rss[big-cold]:-}" ]; then
      echo "engine peak RSS on row 4: **$((rss[big-cold] / 1024)) MiB** (target: under 300 MiB)."
      echo
    fi
    for id in "${rows[@]}"; do
      if [ -n "${sizes[$id]:-}" ]; then
        echo "Output tar sizes, ${label[$id]%%,*}: ${sizes[$id]}."
        echo
      fi
    done
    echo "Machine and tools:"
    echo
    echo "- $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) memory, kernel $(uname -r)"
    echo "- engine: release build of $rev$dirty"
    echo "- BuildKit: the one built into dockerd $($DOCKER version --format '{{.Server.Version}}' 2>/dev/null) (Debian docker.io), storage driver $($DOCKER info --format '{{.Driver}}' 2>/dev/null)"
    echo "- buildah: $(buildah --version | sed 's/^buildah version //'), storage driver overlay, isolation $isolation, \`--layers --jobs $cores\`"
    echo "- RUN runtime: engine builtin sandbox; BuildKit $($DOCKER info --format '{{.DefaultRuntime}}' 2>/dev/null) ($(runc --version 2>/dev/null | head -n1)); buildah \`--isolation $isolation\`"
    echo "- $(hyperfine --version), GNU time $(dpkg-query -W -f='${Version}' time 2>/dev/null || echo unknown)"
    echo "<!-- compare.sh:end -->"
  } >"$gen"
  if [ -f "$results" ] && grep -q '<!-- compare.sh:begin' "$results"; then
    awk -v gen="$gen" '
      /<!-- compare.sh:begin/ { while ((getline l < gen) > 0) print l; skip = 1; next }
      /<!-- compare.sh:end -->/ { skip = 0; next }
      !skip { print }' "$results" >"$results.new"
    mv "$results.new" "$results"
  else
    { echo "# Benchmark results"; echo; cat "$gen"; } >"$results"
  fi
  echo "wrote $results" >&2
fi
