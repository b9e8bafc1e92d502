/* keepalive.c: see keepalive.h. */
#include "keepalive.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int spro_bench_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int spro_bench_request(struct spro_bench_conn *c, const char *path, const char *ctype,
                       const void *b, size_t len, const uint8_t **body, size_t *blen)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     path, ctype, len);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)b, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    if (sendmsg(c->fd, &mh, MSG_NOSIGNAL) != n + (ssize_t)len)
        return -1;
    c->rlen = 0;
    char *end = NULL;
    while (end == NULL) {
        if (c->rlen + 1 >= c->cap)
            return -1;
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->cap - 1 - c->rlen, 0);
        if (r <= 0)
            return -1;
        c->rlen += (size_t)r;
        c->rbuf[c->rlen] = '\0';
        end = strstr(c->rbuf, "\r\n\r\n");
    }
    int status = atoi(c->rbuf + 9);
    char *cl = strcasestr(c->rbuf, "\r\ncontent-length:");
    if (cl == NULL || cl > end)
        return -1;
    size_t want = strtoul(cl + 17, NULL, 10), hl = (size_t)(end + 4 - c->rbuf);
    if (hl + want >= c->cap)
        return -1;
    while (c->rlen < hl + want) {
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, hl + want - c->rlen, 0);
        if (r <= 0)
            return -1;
        c->rlen += (size_t)r;
    }
    *body = (const uint8_t *)c->rbuf + hl;
    *blen = want;
    return status;
}
