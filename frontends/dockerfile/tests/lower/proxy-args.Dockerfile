# Proxy build args reach RUN without ARG, apart from its environment (not in
# the cache key, not in history); declared with ARG they are ordinary args.
FROM busybox
RUN wget -q -O- http://example.invalid/
ARG https_proxy
RUN wget -q -O- https://example.invalid/
