# `--target test` needs only base and test: release and docs must be pruned.
FROM busybox AS base
RUN echo base

FROM base AS test
RUN echo testing

FROM base AS docs
RUN echo docs

FROM base AS release
COPY --from=docs / /docs
RUN echo release
