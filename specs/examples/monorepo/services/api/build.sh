#!/bin/sh
# "Compiles" the Go-shaped api with busybox tools only: checks the module,
# turns the `// route:` comments of main.go into static responses, and
# writes a launcher that serves them with busybox httpd.
set -eu
out=${1:?usage: build.sh OUTDIR}
module=$(sed -n 's/^module //p' go.mod)
[ -n "$module" ] || { echo "build.sh: no module in go.mod" >&2; exit 1; }
grep -q '^package main' main.go || { echo "build.sh: main.go is not package main" >&2; exit 1; }
version=$(sed -n 's/^const Version = "\(.*\)"/\1/p' main.go)
buildid=$(cat go.mod main.go internal/*/*.go | sha256sum | cut -c1-12)

mkdir -p "$out/bin" "$out/www"
grep '^// route: ' main.go | while read -r _ _ path body; do
  printf '%s\n' "$body" > "$out/www/${path#/}"
done

cat > "$out/bin/api" <<LAUNCHER
#!/bin/sh
# $module $version (build $buildid)
exec httpd -f -p "\${PORT:-8080}" -h /usr/share/api/www
LAUNCHER
chmod 0755 "$out/bin/api"
echo "built $module $version ($buildid): $(ls "$out/www" | wc -l) routes"
