# syntax=docker/dockerfile:1
FROM busybox
RUN <<EOF
echo one
echo two
EOF
COPY <<-EOT /etc/motd
	hello $HOSTNAME
	EOT
RUN cat <<A > /a.txt && cat <<"B" > /b.txt
first
A
second $NOT_EXPANDED
B
