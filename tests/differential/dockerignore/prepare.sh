# The tree is generated (not committed) so that no .gitignore (*.log,
# node_modules ...) can silently drop fixture files.
mkdir -p sub/deep secret tmpdir node_modules pkg/node_modules docs/sub src
for f in a.log keep.log sub/b.log sub/deep/c.log sub/deep/keep.log secret/x \
    tmpfile tmpdir/y node_modules/m pkg/node_modules/m pkg/index.js \
    docs/a.md docs/b.txt docs/sub/c.md src/main.c src/main.o README.txt; do
  echo "$f" > "$f"
done
