FROM busybox
ARG NAME
WORKDIR ${NAME:?NAME must be set}
