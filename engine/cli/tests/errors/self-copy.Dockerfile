FROM busybox AS me
COPY --from=me /a /b
