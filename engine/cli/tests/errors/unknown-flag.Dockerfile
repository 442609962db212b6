FROM busybox
COPY --lnk a b
