# A xz-compressed tar, with owners and modes; also the same stream under a
# name that does not say it is an archive (ADD sniffs the content).
mkdir -p t/pkg/etc t/pkg/bin
echo conf > t/pkg/etc/app.conf
echo '#!/bin/sh' > t/pkg/bin/run
chmod 0755 t/pkg/bin/run
chmod 0600 t/pkg/etc/app.conf
ln -s ../etc/app.conf t/pkg/bin/conf-link
tar --numeric-owner --owner=1001 --group=1 -C t -cJf archive.tar.xz pkg
cp archive.tar.xz no-extension
rm -rf t
