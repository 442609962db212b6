# Global ARGs are visible in FROM only; a stage sees them once redeclared.
ARG TAG=latest
ARG UNUSED=x
FROM busybox:${TAG}
ARG TAG
ARG TARGETARCH
ENV FROM_ENV=${TAG}-${TARGETARCH}
RUN echo "$TAG $FROM_ENV"
ARG OVERRIDE=default
RUN echo $OVERRIDE
