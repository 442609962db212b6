# The tree is generated (not committed) so that no .gitignore can drop
# fixture files.
mkdir -p folder2/sub
for f in folder2/o folder2/sub/p top.txt; do
  echo "$f" > "$f"
done
