# The tree is generated (not committed) so that no .gitignore can drop
# fixture files.
mkdir -p folder1/sub folder2 a/b/c a/x
for f in folder1/file1 folder1/file2 folder1/sub/s folder2/o a/b/c/deep.txt \
    a/b/c/other a/b/top a/x/y top.txt; do
  echo "$f" > "$f"
done
chmod 0750 folder1
chmod 0700 a/b
