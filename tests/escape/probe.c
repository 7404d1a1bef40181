/* The escape suite's probe: one attempt to get out of a session per
 * subcommand. It prints "ESCAPED <what>" when the attempt worked and
 * "BLOCKED <why>" when the system refused it; the test decides, and checks
 * from the host what "contained" means (a write that landed only inside).
 * Built static by tests/escape.rs, so that it runs in any image. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int blocked(const char *what) {
    printf("BLOCKED %s: %s\n", what, strerror(errno));
    return 0;
}

static int escaped(const char *what) {
    printf("ESCAPED %s\n", what);
    return 0;
}

/* read PATH: its first bytes, or why not. */
static int read_file(const char *path) {
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return blocked(path);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) return blocked(path);
    buf[n] = 0;
    printf("ESCAPED read %s: %s\n", path, buf);
    return 0;
}

static int write_file(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return blocked(path);
    if (write(fd, "escaped\n", 8) != 8) { close(fd); return blocked(path); }
    close(fd);
    printf("WROTE %s\n", path); /* contained or not: the host decides */
    return 0;
}

static int connect_tcp(const char *host, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return blocked("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) return blocked("connect");
    char buf[64] = {0};
    ssize_t n = read(s, buf, sizeof buf - 1);
    printf("ESCAPED connect: %s\n", n > 0 ? buf : "");
    return 0;
}

static int connect_unix(const char *path) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return blocked("socket");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) return blocked(path);
    return escaped("unix socket");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) return 2;
    const char *what = argv[1];
    if (!strcmp(what, "read")) return read_file(argv[2]);
    if (!strcmp(what, "write")) return write_file(argv[2]);
    if (!strcmp(what, "connect")) return connect_tcp(argv[2], atoi(argv[3]));
    if (!strcmp(what, "unix")) return connect_unix(argv[2]);
    if (!strcmp(what, "see")) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%s", argv[2]);
        struct stat st;
        if (stat(path, &st) < 0) return blocked("see the process");
        return escaped("see the process");
    }
    if (!strcmp(what, "kill")) {
        if (kill(atoi(argv[2]), SIGKILL) < 0) return blocked("kill");
        return escaped("kill");
    }
    if (!strcmp(what, "ptrace")) {
        if (ptrace(PTRACE_ATTACH, atoi(argv[2]), 0, 0) < 0) return blocked("ptrace");
        return escaped("ptrace");
    }
    if (!strcmp(what, "mount")) {
        if (mount("tmpfs", argv[2], "tmpfs", 0, NULL) < 0) return blocked("mount");
        return escaped("mount");
    }
    if (!strcmp(what, "hostname")) {
        if (sethostname(argv[2], strlen(argv[2])) < 0) return blocked("sethostname");
        printf("CHANGED hostname\n"); /* in its own UTS namespace: contained */
        return 0;
    }
    if (!strcmp(what, "sysctl")) {
        int fd = open(argv[2], O_WRONLY);
        if (fd < 0) return blocked("sysctl");
        if (write(fd, argv[3], strlen(argv[3])) < 0) { close(fd); return blocked("sysctl"); }
        close(fd);
        printf("CHANGED sysctl\n");
        return 0;
    }
    if (!strcmp(what, "euid")) {
        printf("EUID %d\n", (int)geteuid());
        return 0;
    }
    if (!strcmp(what, "fds")) {
        /* Descriptors beyond stdin, stdout, stderr. */
        int extra = 0;
        for (int fd = 3; fd < 1024; fd++)
            if (fcntl(fd, F_GETFD) >= 0) extra++;
        printf("EXTRA-FDS %d\n", extra);
        return 0;
    }
    if (!strcmp(what, "env")) {
        const char *v = getenv(argv[2]);
        if (v) printf("ESCAPED env %s=%s\n", argv[2], v);
        else printf("BLOCKED env %s: not set\n", argv[2]);
        return 0;
    }
    if (!strcmp(what, "chroot")) {
        if (chroot("/") < 0) return blocked("chroot");
        return escaped("chroot");
    }
    return 2;
}
