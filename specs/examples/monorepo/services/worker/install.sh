#!/bin/sh
# Stands in for `pip install -r requirements.txt`: copies each required
# package from vendor/ into the virtual environment's site-packages, and
# writes the `worker` console script (as busybox sh: the example has no
# Python, only the shape of a Python service).
set -eu
venv=${1:?usage: install.sh VENV}
here=$(dirname "$0")
site="$venv/lib/python3/site-packages"
mkdir -p "$site" "$venv/bin"
grep -v '^#' "$here/requirements.txt" | grep . | while IFS='=' read -r name _ version; do
  [ -d "$here/vendor/$name" ] || { echo "install.sh: $name is not vendored" >&2; exit 1; }
  (cd "$here/vendor" && tar -cf - "$name") | tar -xf - -C "$site"
  printf 'Name: %s\nVersion: %s\n' "$name" "$version" > "$site/$name.dist-info"
  echo "installed $name $version"
done
cat > "$venv/bin/worker" <<'SCRIPT'
#!/bin/sh
queue=default
while [ $# -gt 0 ]; do
  case "$1" in
    --queue) queue=$2; shift 2 ;;
    *) shift ;;
  esac
done
echo "worker: listening on $queue"
exec sleep 2147483647
SCRIPT
chmod 0755 "$venv/bin/worker"
