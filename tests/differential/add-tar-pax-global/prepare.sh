# A pax tar that starts with a global extended header ('g' entry), as GNU tar
# writes with --pax-option=globexthdr.*: the header is metadata, not a file,
# and must not appear in the image (it used to create a stray /tmp).
mkdir -p t/folder
echo hello > t/folder/file
tar --format=pax --pax-option=globexthdr.comment=engine-test \
  --numeric-owner --owner=0 --group=0 --mtime=@1700000000 -C t -czf content.tar.gz folder
rm -rf t
