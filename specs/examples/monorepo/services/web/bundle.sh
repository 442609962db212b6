#!/bin/sh
# Stands in for a JavaScript bundler: strips comments and indentation from
# the scripts and styles, names them by content hash, and points
# index.html at the hashed names.
set -eu
src=${1:?usage: bundle.sh SRC OUT}
out=${2:?usage: bundle.sh SRC OUT}
mkdir -p "$out/assets"
cp "$src/index.html" "$out/index.html"
for f in app.js style.css; do
  ext=${f##*.}
  min="$out/assets/min.$ext"
  sed -e 's|^[[:space:]]*||' -e '/^\/\//d' -e 's|/\*.*\*/||' -e '/^$/d' "$src/$f" > "$min"
  hash=$(sha256sum "$min" | cut -c1-8)
  name="${f%.*}.$hash.$ext"
  mv "$min" "$out/assets/$name"
  sed -i "s|\"$f\"|\"assets/$name\"|" "$out/index.html"
  echo "bundled $f -> assets/$name"
done
