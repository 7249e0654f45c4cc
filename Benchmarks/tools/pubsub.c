/* Pub/sub publish → delivery measurement: a subscriber app and a paced publisher.
 *
 *   pubsub sub PORT PUBSUB TOPIC
 *     An app on 127.0.0.1:PORT: GET /dapr/subscribe declares {PUBSUB, TOPIC, route /bench};
 *     POST /bench timestamps each delivered event (CLOCK_MONOTONIC, shared by all processes on the
 *     machine) and answers SUCCESS; POST /reset?run=N starts counting run N (events of other runs
 *     are counted as stale); GET /stats returns the run's figures as JSON.
 *
 *   pubsub pub PORT PATH RATE CONNECTIONS SECONDS RUN BODY_BYTES
 *     POSTs JSON events {"bench_run","bench_seq","bench_t",pad} of BODY_BYTES to PATH on
 *     127.0.0.1:PORT over CONNECTIONS keep-alive connections, RATE events/s in total (0: back to
 *     back), for SECONDS. Prints how many were accepted and the publish latency percentiles. */
#include "common.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

/* ---------------- subscriber ---------------- */

#define MAX_SEQ (1u << 24)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long long current_run = -1;
static long long received, unique_count, duplicates, stale, bad;
static uint64_t first_ns, last_ns;
static samples_t latencies;
static uint8_t *seen; /* one bit per sequence number */
static char subscribe_body[512];

static void reply(int fd, int status, const char *reason, const char *type, const char *body) {
    char head[256];
    size_t blen = strlen(body);
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status, reason, type, blen);
    if (write_all(fd, head, (size_t)n) == 0 && blen) write_all(fd, body, blen);
}

static void stats_json(char *out, size_t cap) {
    samples_t sorted = {0};
    pthread_mutex_lock(&lock);
    samples_merge(&sorted, &latencies);
    int n = snprintf(out, cap,
                     "{\"run\":%lld,\"received\":%lld,\"unique\":%lld,\"duplicates\":%lld,\"stale\":%lld,\"bad\":%lld,"
                     "\"first_ns\":%llu,\"last_ns\":%llu,",
                     current_run, received, unique_count, duplicates, stale, bad, (unsigned long long)first_ns,
                     (unsigned long long)last_ns);
    pthread_mutex_unlock(&lock);
    samples_sort(&sorted);
    snprintf(out + n, cap - (size_t)n,
             "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}", pct_us(&sorted, 50), pct_us(&sorted, 90),
             pct_us(&sorted, 99), sorted.n ? (double)sorted.v[sorted.n - 1] / 1000.0 : 0.0);
    free(sorted.v);
}

static void record_event(const message_t *m) {
    uint64_t arrival = now_ns();
    long long run = json_int_field(m->body, m->body_len, "bench_run");
    long long seq = json_int_field(m->body, m->body_len, "bench_seq");
    long long sent = json_int_field(m->body, m->body_len, "bench_t");
    pthread_mutex_lock(&lock);
    if (run < 0 || seq < 0 || sent < 0 || seq >= MAX_SEQ) {
        bad++;
    } else if (run != current_run) {
        stale++;
    } else {
        received++;
        if (seen[seq >> 3] & (1u << (seq & 7))) {
            duplicates++;
        } else {
            seen[seq >> 3] |= (uint8_t)(1u << (seq & 7));
            unique_count++;
            samples_add(&latencies, arrival > (uint64_t)sent ? arrival - (uint64_t)sent : 0);
            if (!first_ns) first_ns = arrival;
            last_ns = arrival;
        }
    }
    pthread_mutex_unlock(&lock);
}

static void *serve_connection(void *arg) {
    int fd = (int)(intptr_t)arg;
    set_nodelay(fd);
    conn_t c;
    conn_init(&c, fd);
    message_t m;
    while (read_message(&c, &m, 1, NULL)) {
        if (strcmp(m.method, "POST") == 0 && strcmp(m.target, "/bench") == 0) {
            record_event(&m);
            reply(fd, 200, "OK", "application/json", "{\"status\":\"SUCCESS\"}");
        } else if (strcmp(m.method, "GET") == 0 && strcmp(m.target, "/dapr/subscribe") == 0) {
            reply(fd, 200, "OK", "application/json", subscribe_body);
        } else if (strcmp(m.method, "GET") == 0 && strcmp(m.target, "/stats") == 0) {
            char out[1024];
            stats_json(out, sizeof out);
            reply(fd, 200, "OK", "application/json", out);
        } else if (strcmp(m.method, "POST") == 0 && strncmp(m.target, "/reset?run=", 11) == 0) {
            pthread_mutex_lock(&lock);
            current_run = atoll(m.target + 11);
            received = unique_count = duplicates = stale = bad = 0;
            first_ns = last_ns = 0;
            latencies.n = 0;
            memset(seen, 0, MAX_SEQ / 8);
            pthread_mutex_unlock(&lock);
            reply(fd, 200, "OK", "application/json", "{}");
        } else {
            reply(fd, 404, "Not Found", "text/plain", "");
        }
        int close_after = m.close;
        free(m.body);
        if (close_after) break;
    }
    conn_free(&c);
    close(fd);
    return NULL;
}

static _Noreturn void run_subscriber(int port, const char *pubsub, const char *topic) {
    snprintf(subscribe_body, sizeof subscribe_body, "[{\"pubsubname\":\"%s\",\"topic\":\"%s\",\"route\":\"/bench\"}]", pubsub, topic);
    seen = calloc(MAX_SEQ / 8, 1);
    int listener = listen_loopback(port, NULL);
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            die("accept");
        }
        pthread_t thread;
        pthread_create(&thread, NULL, serve_connection, (void *)(intptr_t)fd);
        pthread_detach(thread);
    }
}

/* ---------------- publisher ---------------- */

static int pub_port, pub_connections, pub_body_bytes;
static const char *pub_path;
static double pub_rate, pub_seconds;
static long long pub_run;
static uint64_t pub_start;
static atomic_llong next_seq;

typedef struct {
    int index;
    long long sent, ok, errors;
    samples_t latency;
} worker_t;

static void *publish_worker(void *arg) {
    worker_t *w = arg;
    char *request = malloc((size_t)pub_body_bytes + 1024);
    char *body = malloc((size_t)pub_body_bytes + 256);
    uint64_t end = pub_start + (uint64_t)(pub_seconds * 1e9);
    uint64_t period = pub_rate > 0 ? (uint64_t)(1e9 * pub_connections / pub_rate) : 0;
    /* Connections are staggered so that together they send evenly spaced events. */
    uint64_t next = pub_start + (period ? period * (uint64_t)w->index / (uint64_t)pub_connections : 0);
    int fd = -1;
    conn_t c = {0};
    int reported = 0;
    for (;;) {
        if (period) {
            if (next >= end) break;
            sleep_until_ns(next);
            next += period;
        } else if (now_ns() >= end) {
            break;
        }
        if (fd < 0) {
            fd = connect_loopback(pub_port);
            if (fd < 0) {
                w->errors++;
                usleep(1000);
                continue;
            }
            conn_init(&c, fd);
        }
        long long seq = atomic_fetch_add(&next_seq, 1);
        uint64_t t0 = now_ns();
        int n = snprintf(body, 256, "{\"bench_run\":%lld,\"bench_seq\":%lld,\"bench_t\":%llu,\"pad\":\"", pub_run, seq,
                         (unsigned long long)t0);
        while (n < pub_body_bytes - 2) body[n++] = 'x';
        body[n++] = '"';
        body[n++] = '}';
        int hlen = snprintf(request, 1024,
                            "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                            pub_path, pub_port, n);
        memcpy(request + hlen, body, (size_t)n);
        w->sent++;
        message_t m;
        if (write_all(fd, request, (size_t)(hlen + n)) != 0 || !read_message(&c, &m, 0, "POST")) {
            w->errors++;
            close(fd);
            conn_free(&c);
            fd = -1;
            continue;
        }
        samples_add(&w->latency, now_ns() - t0);
        if (m.status >= 200 && m.status < 300) {
            w->ok++;
        } else {
            w->errors++;
            if (!reported++) fprintf(stderr, "publish: HTTP %d: %.300s\n", m.status, m.body);
        }
        int close_after = m.close;
        free(m.body);
        if (close_after) {
            close(fd);
            conn_free(&c);
            fd = -1;
        }
    }
    if (fd >= 0) {
        close(fd);
        conn_free(&c);
    }
    free(request);
    free(body);
    return NULL;
}

static int run_publisher(void) {
    worker_t *workers = calloc((size_t)pub_connections, sizeof *workers);
    pthread_t *threads = calloc((size_t)pub_connections, sizeof *threads);
    pub_start = now_ns() + 20000000ull; /* all workers start together, 20 ms from now */
    for (int i = 0; i < pub_connections; i++) {
        workers[i].index = i;
        pthread_create(&threads[i], NULL, publish_worker, &workers[i]);
    }
    samples_t all = {0};
    long long sent = 0, ok = 0, errors = 0;
    for (int i = 0; i < pub_connections; i++) {
        pthread_join(threads[i], NULL);
        sent += workers[i].sent;
        ok += workers[i].ok;
        errors += workers[i].errors;
        samples_merge(&all, &workers[i].latency);
    }
    double elapsed = (double)(now_ns() - pub_start) / 1e9;
    printf("{\"run\":%lld,\"rate\":%.0f,\"connections\":%d,\"sent\":%lld,\"ok\":%lld,\"errors\":%lld,\"seconds\":%.3f,\"ok_per_s\":%.1f,",
           pub_run, pub_rate, pub_connections, sent, ok, errors, elapsed, (double)ok / elapsed);
    print_percentiles(&all);
    printf("}\n");
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 5 && strcmp(argv[1], "sub") == 0) run_subscriber(atoi(argv[2]), argv[3], argv[4]);
    if (argc == 9 && strcmp(argv[1], "pub") == 0) {
        pub_port = atoi(argv[2]);
        pub_path = argv[3];
        pub_rate = atof(argv[4]);
        pub_connections = atoi(argv[5]);
        pub_seconds = atof(argv[6]);
        pub_run = atoll(argv[7]);
        pub_body_bytes = atoi(argv[8]);
        if (pub_connections < 1 || pub_body_bytes < 100) {
            fprintf(stderr, "need CONNECTIONS >= 1 and BODY_BYTES >= 100\n");
            return 2;
        }
        return run_publisher();
    }
    fprintf(stderr, "usage: pubsub sub PORT PUBSUB TOPIC | pubsub pub PORT PATH RATE CONNECTIONS SECONDS RUN BODY_BYTES\n");
    return 2;
}
