# gzip of a plain file: compressed, but not a tar, so ADD copies it
gzip -c a.txt > a.txt.gz
chmod 0600 a.txt.gz
