# Two stages with the same first steps: those steps are one node.
FROM busybox AS a
RUN apk add --no-cache curl
RUN echo a

FROM busybox AS b
RUN apk add --no-cache curl
RUN echo b

FROM scratch
COPY --from=a /etc/os-release /a
COPY --from=b /etc/os-release /b
