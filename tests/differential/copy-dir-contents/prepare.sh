# git does not keep empty directories nor modes other than 644/755
mkdir -p src/empty
chmod 0700 src/sub/deeper
chmod 0600 src/top.txt
chmod 0755 src/sub/s.txt
