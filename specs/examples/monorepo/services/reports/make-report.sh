#!/bin/sh
# Renders the report templates for one output format.
set -eu
format=${1:?usage: make-report.sh FORMAT OUT}
out=${2:?usage: make-report.sh FORMAT OUT}
mkdir -p "$out"
for t in templates/*."$format".tmpl; do
  name=$(basename "$t" .tmpl)
  sed "s/@FORMAT@/$format/g" "$t" > "$out/$name"
done
cat > "$out/run.sh" <<'RUN'
#!/bin/sh
for r in /opt/reports/*.csv; do
  echo "== $r"
  cat "$r"
done
RUN
chmod 0755 "$out/run.sh"
