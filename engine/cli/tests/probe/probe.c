/* A static probe the security tests copy into images: it makes one system call
 * an attacker would make and prints what happened, "ok ..." or "err <errno>".
 * Built by the tests with `cc -static`; busybox has no keyctl, no unshare(2)
 * flags we need, and no unix-socket client. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define KEY_SPEC_SESSION_KEYRING -3
#define KEY_SPEC_USER_KEYRING -4
#define KEYCTL_UPDATE 2
#define KEYCTL_SEARCH 10
#define KEYCTL_READ 11

static int result(long r) {
  if (r < 0) {
    printf("err %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
  } else {
    printf("ok %ld\n", r);
  }
  return 0;
}

static long keyring(const char *which) {
  return strcmp(which, "session") == 0 ? KEY_SPEC_SESSION_KEYRING : KEY_SPEC_USER_KEYRING;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *cmd = argv[1];
  if (!strcmp(cmd, "open") && argc == 3) {
    /* open a path read-write (or read-only) and print the first bytes */
    int fd = open(argv[2], O_RDWR | O_NONBLOCK);
    if (fd < 0) fd = open(argv[2], O_RDONLY | O_NONBLOCK);
    if (fd < 0) return result(-1);
    char buf[64] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) return result(-1);
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] < 32 || buf[i] > 126) buf[i] = '.';
    printf("ok read %s\n", buf);
    return 0;
  }
  if (!strcmp(cmd, "write") && argc == 4) {
    int fd = open(argv[2], O_WRONLY | O_NONBLOCK);
    if (fd < 0) return result(-1);
    return result(write(fd, argv[3], strlen(argv[3])));
  }
  if (!strcmp(cmd, "key-search") && argc == 4)
    return result(syscall(SYS_keyctl, KEYCTL_SEARCH, keyring(argv[2]), "user", argv[3], 0));
  if (!strcmp(cmd, "key-read") && argc == 3) {
    char buf[256] = {0};
    long r = syscall(SYS_keyctl, KEYCTL_READ, atol(argv[2]), buf, sizeof buf - 1);
    if (r < 0) return result(r);
    printf("ok read %s\n", buf);
    return 0;
  }
  if (!strcmp(cmd, "key-update") && argc == 4)
    return result(syscall(SYS_keyctl, KEYCTL_UPDATE, atol(argv[2]), argv[3], strlen(argv[3])));
  if (!strcmp(cmd, "key-add") && argc == 5)
    return result(syscall(SYS_add_key, "user", argv[3], argv[4], strlen(argv[4]), keyring(argv[2])));
  if (!strcmp(cmd, "unshare-user"))
    return result(unshare(CLONE_NEWUSER));
  if (!strcmp(cmd, "unshare-net"))
    return result(unshare(CLONE_NEWNET));
  if (!strcmp(cmd, "tcp") && argc == 4) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) return result(-1);
    char buf[64] = {0};
    ssize_t n = read(s, buf, sizeof buf - 1);
    if (n < 0) return result(-1);
    printf("ok read %s\n", buf);
    return 0;
  }
  if (!strcmp(cmd, "abstract") && argc == 3) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(argv[2]);
    if (len > sizeof a.sun_path - 1) return 2;
    memcpy(a.sun_path + 1, argv[2], len);
    if (connect(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + len) < 0)
      return result(-1);
    char buf[64] = {0};
    ssize_t n = read(s, buf, sizeof buf - 1);
    if (n < 0) return result(-1);
    printf("ok read %s\n", buf);
    return 0;
  }
  return 2;
}
