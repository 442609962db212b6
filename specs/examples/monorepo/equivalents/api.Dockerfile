# The `api` image of ../engine.toml (with its default variables) as one
# standalone Dockerfile: building either gives the same image.
#
# Build context: services/api (ignoring *.md and bin/)
# Named context `base`: the base/ directory (filled by ../prepare.sh)
#
#   engine build -f equivalents/api.Dockerfile --build-context base=base services/api (ignoring *.md and bin/)

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

FROM common AS api-build
WORKDIR /src
COPY . ./
RUN --mount=type=cache,target=/root/.cache/go-build,id=api-go-build sh build.sh /out

FROM common AS api
ENV PORT=8080
COPY --from=api-build /out/bin/api /usr/local/bin/api
COPY --from=api-build /out/www/ /usr/share/api/www/
USER app
LABEL org.opencontainers.image.title=api org.opencontainers.image.version=0.3.0
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["/usr/local/bin/api"]
