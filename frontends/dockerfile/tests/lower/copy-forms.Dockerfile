FROM scratch AS files
COPY --chmod=0755 --chown=1:2 bin/ /usr/local/bin/
COPY ["a b.txt", "c.txt", "/data/"]
ADD archive.tar.gz /opt/
COPY --parents --exclude=*.md docs/./guide/ /srv/
COPY --link *.conf /etc/app/
