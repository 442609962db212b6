# The tree is generated (not committed) so that no .gitignore can drop
# fixture files.
mkdir -p docs/sub/deeper docs/empty secret/inner build/out
for f in docs/a.md docs/b.txt docs/sub/c.md docs/sub/d.txt docs/sub/deeper/e.md \
    secret/x secret/inner/y.txt build/out/z.md build/keep.txt top.md; do
  echo "$f" > "$f"
done
chmod 0750 docs/sub
