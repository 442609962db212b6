# Workload 4: a RUN writing 512 MiB (incompressible), exported as an OCI tar.
FROM busybox
RUN dd if=/dev/urandom of=/big.bin bs=1M count=512 2>/dev/null && ls -l /big.bin
