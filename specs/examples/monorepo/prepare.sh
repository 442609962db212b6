#!/bin/sh
# Fills base/rootfs/ with the only base image the example needs: Debian's
# statically linked busybox, one symlink per applet, and a minimal
# /etc/passwd, /etc/group and /tmp. The `busybox` stage of engine.toml
# copies this directory onto scratch, so the example builds with no network
# and no registry.
#
# Idempotent: run it as often as you like; it rewrites the same tree.
# Installs busybox-static with apt-get when /bin/busybox is missing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
rootfs="$here/base/rootfs"
busybox=${BUSYBOX:-/bin/busybox}

if [ ! -x "$busybox" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "prepare.sh: $busybox is missing; install busybox-static (as root: apt-get install busybox-static)" >&2
    exit 1
  fi
  echo "prepare.sh: installing busybox-static"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq busybox-static >/dev/null
fi
# A dynamically linked busybox would need a libc in the image.
if command -v file >/dev/null 2>&1 && file -L "$busybox" | grep -q "dynamically linked"; then
  echo "prepare.sh: $busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi

rm -rf "$rootfs"
mkdir -p "$rootfs/bin" "$rootfs/sbin" "$rootfs/usr/bin" "$rootfs/usr/sbin" \
  "$rootfs/etc" "$rootfs/tmp" "$rootfs/root" "$rootfs/home"
cp "$busybox" "$rootfs/bin/busybox"
chmod 0755 "$rootfs/bin/busybox"
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"

# One relative symlink per applet, where busybox --install would put it.
"$busybox" --list-full | while read -r applet; do
  case "$applet" in
    bin/busybox | linuxrc | "") continue ;;
    bin/*) target=busybox ;;
    *) target="$(dirname "$applet" | sed 's|[^/][^/]*|..|g')/bin/busybox" ;;
  esac
  [ -e "$rootfs/$applet" ] || [ -L "$rootfs/$applet" ] || ln -s "$target" "$rootfs/$applet"
done

cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"

# Same mtimes on every run, so that the context hashes the same.
find "$rootfs" -exec touch -h -d '2024-01-01T00:00:00Z' {} + 2>/dev/null || true

echo "prepare.sh: $(find "$rootfs" | wc -l) entries in ${rootfs#"$here"/}"
