# The tree is generated (not committed) so that no .gitignore can drop
# fixture files.
mkdir -p subdir/keep/drop/again/deeper subdir/other other
for f in subdir/f subdir/keep/k subdir/keep/drop/d subdir/keep/drop/again/g \
    subdir/keep/drop/again/h subdir/keep/drop/again/deeper/z subdir/other/o \
    other/o top.txt; do
  echo "$f" > "$f"
done
