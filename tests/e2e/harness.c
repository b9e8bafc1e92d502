/* harness.c: see harness.h. */
#include "harness.h"

#include "crypto/crypto.h"
#include "proto/proto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *h_server_bin;
const char *h_admin_bin;
const char *h_client_bin;

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

int h_main(const struct check_test *tests, size_t n, int argc, char **argv)
{
    if (spro_crypto_init() != 0)
        return 1;
    if (argc < 3) {
        fprintf(stderr, "usage: %s SPRO_SERVER SPRO_ADMIN [SPRO_CLIENT] [TEST]...\n", argv[0]);
        return 2;
    }
    h_server_bin = argv[1];
    h_admin_bin = argv[2];
    int used = 2;
    if (argc > 3 && ends_with(argv[3], "spro-client"))
        h_client_bin = argv[++used];
    h_tmpdir();
    argv[used] = argv[0];
    return check_run(tests, n, argc - used, argv + used);
}

#define MAX_SERVERS 32
static pid_t running[MAX_SERVERS];
static char tmpdir[256];

static void cleanup(void)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (running[i] > 0) {
            kill(running[i], SIGKILL);
            waitpid(running[i], NULL, 0);
        }
    if (tmpdir[0] != '\0') {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (getenv("SPRO_KEEP_TMP") == NULL && system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
}

const char *h_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/spro-e2e-XXXXXX", base ? base : "/tmp");
        if (mkdtemp(tmpdir) == NULL) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(cleanup);
        signal(SIGPIPE, SIG_IGN);
    }
    return tmpdir;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int h_run(const char *const *argv, char *out, size_t cap)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    char sink[512];
    while ((n = read(p[0], len + 1 < cap ? out + len : sink,
                     len + 1 < cap ? cap - 1 - len : sizeof sink)) > 0)
        if (len + 1 < cap)
            len += (size_t)n;
    close(p[0]);
    if (cap > 0)
        out[len] = '\0';
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const char *h_make_datadir(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", h_tmpdir(), name);
    const char *argv[] = {h_admin_bin, "--data", path, "init", NULL};
    char out[1024];
    if (h_run(argv, out, sizeof out) != 0) {
        fprintf(stderr, "spro-admin init failed: %s\n", out);
        exit(1);
    }
    return path;
}

char *h_server_log(const struct h_server *s)
{
    FILE *f = fopen(s->log, "r");
    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

int h_server_start(struct h_server *s, const char *datadir, const char *const *extra)
{
    static int seq;
    const char *argv[64];
    int a = 0;
    argv[a++] = h_server_bin;
    argv[a++] = "--data";
    argv[a++] = datadir;
    argv[a++] = "--listen";
    argv[a++] = "127.0.0.1:0";
    for (int i = 0; extra != NULL && extra[i] != NULL && a < 62; i++)
        argv[a++] = extra[i];
    argv[a] = NULL;
    snprintf(s->log, sizeof s->log, "%s/server-%d.log", h_tmpdir(), ++seq);
    s->port = 0;
    s->pid = fork();
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < MAX_SERVERS; i++)
        if (running[i] == 0) {
            running[i] = s->pid;
            break;
        }
    uint64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        char *log = h_server_log(s);
        char *p = strstr(log, "\"event\":\"listening\"");
        char *q = p ? strstr(p, "\"port\":") : NULL;
        if (q != NULL)
            s->port = atoi(q + 7);
        free(log);
        if (s->port > 0)
            return 0;
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            for (int i = 0; i < MAX_SERVERS; i++)
                if (running[i] == s->pid)
                    running[i] = 0;
            s->pid = 0;
            return -1;
        }
        usleep(10000);
    }
    return -1;
}

int h_server_stop(struct h_server *s, int wait_ms)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    uint64_t deadline = now_ms() + (uint64_t)wait_ms;
    int st, rc = -1;
    for (;;) {
        pid_t w = waitpid(s->pid, &st, WNOHANG);
        if (w == s->pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (now_ms() >= deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            rc = -1;
            break;
        }
        usleep(5000);
    }
    for (int i = 0; i < MAX_SERVERS; i++)
        if (running[i] == s->pid)
            running[i] = 0;
    s->pid = 0;
    return rc;
}

void h_server_kill(struct h_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    for (int i = 0; i < MAX_SERVERS; i++)
        if (running[i] == s->pid)
            running[i] = 0;
    s->pid = 0;
}

int h_connect(int port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (src != NULL) {
        struct sockaddr_in from = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &from.sin_addr);
        if (bind(fd, (struct sockaddr *)&from, sizeof from) != 0) {
            close(fd);
            return -1;
        }
    }
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int h_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Waits for readability up to the deadline; returns bytes read, 0 on EOF,
 * -1 on error, -2 on timeout. */
static ssize_t read_until(int fd, void *buf, size_t cap, uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return -2;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r == 0)
            return -2;
        if (r < 0 && errno == EINTR)
            continue;
        ssize_t n = recv(fd, buf, cap, 0);
        if (n < 0 && errno == EINTR)
            continue;
        return n;
    }
}

int h_wait_closed(int fd, int ms)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    char buf[4096];
    for (;;) {
        ssize_t n = read_until(fd, buf, sizeof buf, deadline);
        if (n == 0 || n == -1)
            return 1;
        if (n == -2)
            return 0;
    }
}

int h_read_response(int fd, struct h_response *r, int ms)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    char buf[sizeof r->headers + sizeof r->body];
    size_t len = 0;
    char *end = NULL;
    memset(r, 0, sizeof *r);
    while (end == NULL) {
        if (len >= sizeof buf - 1)
            return -1;
        ssize_t n = read_until(fd, buf + len, sizeof buf - 1 - len, deadline);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t hlen = (size_t)(end - buf) + 4;
    if (hlen >= sizeof r->headers || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    for (size_t i = 0; i < hlen; i++)
        r->headers[i] = (char)tolower((unsigned char)buf[i]);
    r->headers[hlen] = '\0';
    char cl[32];
    if (!h_header(r, "content-length", cl, sizeof cl))
        return -1; /* our server always frames with Content-Length */
    size_t want = (size_t)strtoul(cl, NULL, 10);
    if (want > sizeof r->body)
        return -1;
    size_t have = len - hlen;
    if (have > want)
        have = want;
    memcpy(r->body, buf + hlen, have);
    while (have < want) {
        ssize_t n = read_until(fd, r->body + have, want - have, deadline);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    r->body_len = want;
    return 0;
}

int h_request(int port, const char *method, const char *path, const char *ctype, const void *body,
              size_t len, struct h_response *r)
{
    int fd = h_connect(port, NULL);
    if (fd < 0)
        return -1;
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "%s%s%sContent-Length: %zu\r\n\r\n",
                     method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", len);
    int rc = h_send(fd, head, (size_t)n);
    if (rc == 0 && len > 0)
        rc = h_send(fd, body, len);
    if (rc == 0)
        rc = h_read_response(fd, r, 5000);
    close(fd);
    return rc;
}

bool h_header(const struct h_response *r, const char *name, char *out, size_t cap)
{
    char key[128];
    snprintf(key, sizeof key, "\r\n%s:", name);
    const char *p = strstr(r->headers, key);
    if (p == NULL)
        return false;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

const char *h_error_code(const struct h_response *r)
{
    static char code[SPRO_PROTO_MAX_CODE + 1];
    struct spro_msg m;
    code[0] = '\0';
    if (spro_proto_decode(r->body, r->body_len, &m) == 0 && m.type == SPRO_MSG_ERROR) {
        memcpy(code, m.u.error.code.p, m.u.error.code.len);
        code[m.u.error.code.len] = '\0';
    }
    return code;
}

bool h_tls_files(char *cert, char *key, size_t cap)
{
    snprintf(cert, cap, "%s/cert.pem", h_tmpdir());
    snprintf(key, cap, "%s/key.pem", h_tmpdir());
    if (access(cert, F_OK) == 0)
        return true;
    const char *argv[] = {"/usr/bin/openssl",
                          "req",
                          "-x509",
                          "-newkey",
                          "ec",
                          "-pkeyopt",
                          "ec_paramgen_curve:P-256",
                          "-nodes",
                          "-keyout",
                          key,
                          "-out",
                          cert,
                          "-days",
                          "2",
                          "-subj",
                          "/CN=127.0.0.1",
                          NULL};
    char out[4096];
    if (h_run(argv, out, sizeof out) != 0) {
        fprintf(stderr, "openssl req failed: %s\n", out);
        return false;
    }
    return true;
}

/* Runs bin with the arguments of ap up to the NULL (at most max of them). */
static int run_va(char *out, size_t cap, const char *bin, int max, va_list ap)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = bin;
    const char *a;
    while (n <= max && (a = va_arg(ap, const char *)) != NULL)
        argv[n++] = a;
    argv[n] = NULL;
    return h_run(argv, out, cap);
}

int h_runl(char *out, size_t cap, const char *bin, ...)
{
    va_list ap;
    va_start(ap, bin);
    int rc = run_va(out, cap, bin, 30, ap);
    va_end(ap);
    return rc;
}

int h_admin(char *out, size_t cap, ...)
{
    va_list ap;
    va_start(ap, cap);
    int rc = run_va(out, cap, h_admin_bin, 14, ap);
    va_end(ap);
    return rc;
}

bool h_line_value(const char *out, const char *prefix, char *val, size_t cap)
{
    const char *p = strstr(out, prefix);
    if (p == NULL || cap == 0)
        return false;
    p += strlen(prefix);
    size_t n = strcspn(p, "\r\n");
    if (n >= cap)
        return false;
    memcpy(val, p, n);
    val[n] = '\0';
    return true;
}
