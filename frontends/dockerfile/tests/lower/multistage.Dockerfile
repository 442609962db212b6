# A classic build/runtime split with a shared base.
ARG BASE=busybox:1.36
FROM ${BASE} AS base
ENV APP_HOME=/app
WORKDIR $APP_HOME
RUN echo base > /etc/base-marker

FROM base AS build
ARG VERSION=1.0
COPY src/ ./src/
RUN --mount=type=cache,target=/root/.cache sh -c "echo building $VERSION" > build.log

FROM base AS runtime
LABEL org.opencontainers.image.title="demo" version="${VERSION:-none}"
COPY --from=build /app/build.log /app/
USER 1000:1000
EXPOSE 8080 9000-9001/udp
ENTRYPOINT ["/bin/sh"]
CMD ["-c", "cat /app/build.log"]
