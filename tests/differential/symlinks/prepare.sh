# symlinks in the context: named as a source (followed), inside a copied
# directory (kept as links)
ln -s a.txt link-to-a
mkdir -p d
echo in-d > d/file
ln -s file d/rel-link
ln -s /etc/passwd d/abs-link
ln -s missing d/dangling
