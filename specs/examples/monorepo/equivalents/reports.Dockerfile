# The `reports` image of ../engine.toml (with its default variables) as one
# standalone Dockerfile: building either gives the same image.
#
# Build context: services/reports
# Named context `base`: the base/ directory (filled by ../prepare.sh)
#
#   engine build -f equivalents/reports.Dockerfile --build-context base=base services/reports
#
# services/reports/Dockerfile, with the spec's shared stages written out.
ARG REPORT_FORMAT=csv

FROM scratch AS busybox
COPY --from=base rootfs/ /
CMD ["sh"]

FROM busybox AS common
ENV TZ=UTC LANG=C.UTF-8
RUN <<EOF
set -eu
echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd
echo 'app:x:1000:' >> /etc/group
mkdir -p /home/app /srv
chown 1000:1000 /home/app
echo 'monorepo base 0.3.0' > /etc/motd
EOF
LABEL org.opencontainers.image.vendor="Example Corp"

FROM common AS build
ARG REPORT_FORMAT
WORKDIR /src
COPY . .
RUN sh make-report.sh "$REPORT_FORMAT" /out

FROM common
COPY --from=build /out/ /opt/reports/
USER app
CMD ["sh", "/opt/reports/run.sh"]
