FROM busybox
RUN --mount=type=nope,target=/x true
