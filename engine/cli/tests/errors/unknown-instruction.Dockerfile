FROM busybox
RUN echo ok
CPY a b
