FROM busybox
SHELL ["/bin/sh", "-ec"]
ENV A=1 B="two words"
ENV LEGACY value with spaces
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=3 CMD wget -q -O- http://localhost/ || exit 1
VOLUME ["/data", "/logs"]
ONBUILD RUN echo triggered
MAINTAINER someone@example.com
ENTRYPOINT echo entry
CMD ["ignored?"]
