# A stage's ONBUILD triggers run when another stage builds FROM it.
FROM busybox AS parent
ONBUILD RUN echo from-trigger > /trigger
ONBUILD ENV TRIGGERED=yes

FROM parent
RUN cat /trigger
