# The `worker` image of ../engine.toml (with its default variables) as one
# standalone Dockerfile: building either gives the same image.
#
# Build context: services/worker
# Named context `base`: the base/ directory (filled by ../prepare.sh)
#
#   engine build -f equivalents/worker.Dockerfile --build-context base=base services/worker

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

FROM common AS worker
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONPATH=/srv/worker
WORKDIR /srv/worker
COPY requirements.txt install.sh /tmp/install/
COPY vendor/ /tmp/install/vendor/
RUN --mount=type=cache,target=/root/.cache/pip,id=worker-pip sh /tmp/install/install.sh /opt/venv && rm -rf /tmp/install
COPY worker/ ./worker/
USER app
LABEL org.opencontainers.image.title=worker org.opencontainers.image.version=0.3.0
CMD ["worker", "--queue", "default"]
