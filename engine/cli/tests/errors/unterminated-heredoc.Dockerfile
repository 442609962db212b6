FROM busybox
RUN <<END
echo never closed
