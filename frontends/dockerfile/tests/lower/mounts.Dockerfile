FROM busybox AS deps
RUN echo deps > /deps.txt

FROM busybox
RUN --mount=type=bind,from=deps,source=/deps.txt,target=/mnt/deps.txt \
    --mount=type=secret,id=token,required=true \
    --mount=type=tmpfs,target=/tmp/scratch,size=64m \
    --network=none \
    cat /mnt/deps.txt /run/secrets/token
