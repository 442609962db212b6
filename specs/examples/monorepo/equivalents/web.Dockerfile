# The `web` image of ../engine.toml (with its default variables) as one
# standalone Dockerfile: building either gives the same image.
#
# Build context: services/web (its .dockerignore applies)
# Named context `base`: the base/ directory (filled by ../prepare.sh)
#
#   engine build -f equivalents/web.Dockerfile --build-context base=base services/web (its .dockerignore applies)

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

FROM common AS web-build
WORKDIR /app
COPY package.json bundle.sh ./
COPY src/ ./src/
RUN sh bundle.sh src /dist

FROM scratch AS web
COPY --from=web-build /dist/ /srv/www/
LABEL org.opencontainers.image.title=web org.opencontainers.image.version=0.3.0
