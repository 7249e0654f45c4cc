/* Small helpers shared by the benchmark tools (compiled by Benchmarks/bench.py at run time).
 * Clocks, percentiles, loopback sockets and a minimal HTTP/1.1 message reader. Our own code, no
 * third-party sources. Every tool prints one JSON object on stdout. */
#ifndef MECHA_BENCH_COMMON_H
#define MECHA_BENCH_COMMON_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleeps until the CLOCK_MONOTONIC instant `deadline_ns`. */
static inline void sleep_until_ns(uint64_t deadline_ns) {
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000ull), .tv_nsec = (long)(deadline_ns % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static inline void die(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, strerror(errno));
    exit(2);
}

static inline void pin_to_cpu(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

/* A growable array of latency samples (nanoseconds). */
typedef struct {
    uint64_t *v;
    size_t n, cap;
} samples_t;

static inline void samples_add(samples_t *s, uint64_t x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) die("realloc");
    }
    s->v[s->n++] = x;
}

static inline void samples_merge(samples_t *into, const samples_t *from) {
    for (size_t i = 0; i < from->n; i++) samples_add(into, from->v[i]);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static inline void samples_sort(samples_t *s) { qsort(s->v, s->n, sizeof *s->v, cmp_u64); }

/* Nearest-rank percentile of sorted samples, in microseconds (0 when empty). */
static inline double pct_us(const samples_t *sorted, double p) {
    if (sorted->n == 0) return 0;
    size_t rank = (size_t)((p / 100.0) * (double)sorted->n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > sorted->n) rank = sorted->n;
    return (double)sorted->v[rank - 1] / 1000.0;
}

/* Prints "p50_us":…,"p90_us":…,"p99_us":…,"max_us":… (sorts the samples). */
static inline void print_percentiles(samples_t *s) {
    samples_sort(s);
    printf("\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f", pct_us(s, 50), pct_us(s, 90),
           pct_us(s, 99), pct_us(s, 99.9), s->n ? (double)s->v[s->n - 1] / 1000.0 : 0.0);
}

static inline void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* A blocking TCP connection to 127.0.0.1:port, or -1. */
static inline int connect_loopback(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    set_nodelay(fd);
    return fd;
}

/* A listening socket on 127.0.0.1:port (0: any); the port chosen is stored in *bound. */
static inline int listen_loopback(int port, int *bound) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
    if (listen(fd, 512) != 0) die("listen");
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    if (bound) *bound = ntohs(addr.sin_port);
    return fd;
}

static inline int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- A minimal HTTP/1.1 message reader (one connection's buffered input) ---- */

typedef struct {
    int fd;
    char *buf;
    size_t len, cap;
} conn_t;

typedef struct {
    int status;        /* responses: the status code; requests: 0 */
    char method[16];   /* requests */
    char target[512];  /* requests */
    char *body;        /* malloc'd, NUL-terminated (may contain NULs) */
    size_t body_len;
    int close;         /* "Connection: close" seen */
} message_t;

static inline void conn_init(conn_t *c, int fd) {
    c->fd = fd;
    c->len = 0;
    c->cap = 64 * 1024;
    c->buf = malloc(c->cap);
    if (!c->buf) die("malloc");
}

static inline void conn_free(conn_t *c) {
    free(c->buf);
    c->buf = NULL;
}

/* Reads more input; 0 on EOF/error. */
static inline int conn_fill(conn_t *c) {
    if (c->len == c->cap) {
        c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf) die("realloc");
    }
    ssize_t r;
    do r = read(c->fd, c->buf + c->len, c->cap - c->len);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return 0;
    c->len += (size_t)r;
    return 1;
}

static inline void conn_consume(conn_t *c, size_t n) {
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static inline char *find_header_end(conn_t *c) {
    return c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
}

/* Value of header `name` in the head [start, end), or NULL; *vlen gets its length. */
static inline const char *header_value(const char *start, const char *end, const char *name, size_t *vlen) {
    size_t nlen = strlen(name);
    const char *line = memchr(start, '\n', (size_t)(end - start));
    while (line && line < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

/* Reads one complete message (request when is_request, else response to a request of method
 * `request_method`). Handles Content-Length and chunked bodies. Returns 1, or 0 on EOF/error. */
static inline int read_message(conn_t *c, message_t *m, int is_request, const char *request_method) {
    memset(m, 0, sizeof *m);
    char *head_end;
    while (!(head_end = find_header_end(c)))
        if (!conn_fill(c)) return 0;
    size_t head_len = (size_t)(head_end - c->buf) + 4;
    const char *start = c->buf, *end = c->buf + head_len;
    if (is_request) {
        if (sscanf(start, "%15s %511s", m->method, m->target) != 2) return 0;
    } else {
        if (sscanf(start, "HTTP/%*s %d", &m->status) != 1) return 0;
    }
    size_t vlen;
    const char *v = header_value(start, end, "Connection", &vlen);
    if (v && vlen == 5 && strncasecmp(v, "close", 5) == 0) m->close = 1;
    int chunked = 0;
    long content_length = -1;
    v = header_value(start, end, "Transfer-Encoding", &vlen);
    if (v && vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0) chunked = 1;
    v = header_value(start, end, "Content-Length", &vlen);
    if (v) content_length = strtol(v, NULL, 10);
    int no_body = !is_request && ((m->status >= 100 && m->status < 200) || m->status == 204 || m->status == 304 ||
                                  (request_method && strcmp(request_method, "HEAD") == 0));
    conn_consume(c, head_len);
    if (no_body || (!chunked && content_length <= 0 && (is_request || content_length == 0))) {
        m->body = calloc(1, 1);
        return 1;
    }
    if (!chunked && content_length < 0) { /* body until EOF */
        while (conn_fill(c)) {
        }
        m->body = malloc(c->len + 1);
        memcpy(m->body, c->buf, c->len);
        m->body[c->len] = 0;
        m->body_len = c->len;
        c->len = 0;
        m->close = 1;
        return 1;
    }
    if (!chunked) {
        while (c->len < (size_t)content_length)
            if (!conn_fill(c)) return 0;
        m->body = malloc((size_t)content_length + 1);
        memcpy(m->body, c->buf, (size_t)content_length);
        m->body[content_length] = 0;
        m->body_len = (size_t)content_length;
        conn_consume(c, (size_t)content_length);
        return 1;
    }
    size_t cap = 4096, blen = 0;
    char *body = malloc(cap);
    for (;;) {
        char *eol;
        while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
            if (!conn_fill(c)) return free(body), 0;
        size_t size = strtoul(c->buf, NULL, 16);
        conn_consume(c, (size_t)(eol - c->buf) + 2);
        if (size == 0) { /* trailers until an empty line */
            for (;;) {
                while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
                    if (!conn_fill(c)) return free(body), 0;
                size_t line = (size_t)(eol - c->buf);
                conn_consume(c, line + 2);
                if (line == 0) break;
            }
            break;
        }
        while (c->len < size + 2)
            if (!conn_fill(c)) return free(body), 0;
        if (blen + size + 1 > cap) {
            while (blen + size + 1 > cap) cap *= 2;
            body = realloc(body, cap);
        }
        memcpy(body + blen, c->buf, size);
        blen += size;
        conn_consume(c, size + 2);
    }
    body[blen] = 0;
    m->body = body;
    m->body_len = blen;
    return 1;
}

/* Reads an integer field `"name":123` from a JSON text (our own bodies), or -1. */
static inline long long json_int_field(const char *text, size_t len, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *p = memmem(text, len, key, strlen(key));
    if (!p) return -1;
    p += strlen(key);
    while (*p == ' ') p++;
    return strtoll(p, NULL, 10);
}

#endif
