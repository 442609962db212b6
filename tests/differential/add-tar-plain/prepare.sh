# An uncompressed tar with owners, modes, a symlink, a hardlink and an
# empty directory, built with the host's GNU tar.
mkdir -p t/top/sub t/top/empty
echo one > t/top/one.txt
echo two > t/top/sub/two.txt
chmod 0640 t/top/one.txt
chmod 0700 t/top/sub
chmod 4755 t/top/sub/two.txt
ln -s one.txt t/top/link
ln t/top/one.txt t/top/hard
tar --numeric-owner --owner=1000 --group=50 -C t -cf plain.tar top
rm -rf t
