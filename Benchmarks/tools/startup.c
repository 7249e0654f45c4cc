/* Startup probe: exec → first 2xx on GET /v1.0/healthz/outbound.
 *   startup PORT TIMEOUT_SECONDS COMMAND [ARGS…]
 * Starts COMMAND, polls 127.0.0.1:PORT every 200 µs until the health route answers 2xx, then sends
 * SIGTERM and measures how long the process takes to exit (SIGKILL after 10 s). */
#include "common.h"

#include <signal.h>
#include <sys/wait.h>

static int probe(int port) {
    int fd = connect_loopback(port);
    if (fd < 0) return 0;
    static const char request[] = "GET /v1.0/healthz/outbound HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    int status = 0;
    if (write_all(fd, request, sizeof request - 1) == 0) {
        conn_t c;
        conn_init(&c, fd);
        message_t m;
        if (read_message(&c, &m, 0, "GET")) {
            status = m.status;
            free(m.body);
        }
        conn_free(&c);
    }
    close(fd);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: startup PORT TIMEOUT_SECONDS COMMAND [ARGS...]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[1]);
    double timeout = atof(argv[2]);
    uint64_t t0 = now_ns();
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        execvp(argv[3], argv + 3);
        _exit(127);
    }
    uint64_t deadline = t0 + (uint64_t)(timeout * 1e9), ready = 0;
    int polls = 0, last_status = 0, exited = 0, wstatus = 0;
    while (now_ns() < deadline) {
        polls++;
        last_status = probe(port);
        if (last_status >= 200 && last_status < 300) {
            ready = now_ns();
            break;
        }
        if (waitpid(child, &wstatus, WNOHANG) == child) {
            exited = 1;
            break;
        }
        usleep(200);
    }
    uint64_t stop = now_ns();
    if (!exited) kill(child, SIGTERM);
    uint64_t kill_deadline = stop + 10000000000ull;
    int killed = 0;
    while (!exited) {
        pid_t r = waitpid(child, &wstatus, WNOHANG);
        if (r == child) break;
        if (!killed && now_ns() > kill_deadline) {
            kill(child, SIGKILL);
            killed = 1;
        }
        usleep(500);
    }
    uint64_t gone = now_ns();
    if (!ready) {
        printf("{\"ok\":false,\"exited_early\":%s,\"last_status\":%d,\"polls\":%d}\n", exited ? "true" : "false", last_status, polls);
        return 1;
    }
    printf("{\"ok\":true,\"startup_ms\":%.3f,\"shutdown_ms\":%.3f,\"killed\":%s,\"polls\":%d}\n", (double)(ready - t0) / 1e6,
           (double)(gone - stop) / 1e6, killed ? "true" : "false", polls);
    return 0;
}
