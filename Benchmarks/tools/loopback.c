/* The loopback floor: a 1-byte TCP ping-pong between two processes on 127.0.0.1.
 *   loopback CLIENT_CPU SERVER_CPU SECONDS
 * CPUs are pinned with sched_setaffinity (-1: not pinned). Prints round-trip percentiles. */
#include "common.h"

#include <signal.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: loopback CLIENT_CPU SERVER_CPU SECONDS\n");
        return 2;
    }
    int client_cpu = atoi(argv[1]), server_cpu = atoi(argv[2]);
    double seconds = atof(argv[3]);
    int port;
    int listener = listen_loopback(0, &port);
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) { /* server: echo one byte at a time */
        pin_to_cpu(server_cpu);
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) die("accept");
        set_nodelay(fd);
        char b;
        while (read(fd, &b, 1) == 1)
            if (write(fd, &b, 1) != 1) break;
        _exit(0);
    }
    close(listener);
    pin_to_cpu(client_cpu);
    int fd = connect_loopback(port);
    if (fd < 0) die("connect");
    samples_t rtt = {0};
    char b = 'x';
    for (int i = 0; i < 1000; i++) { /* warm-up */
        if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1) die("ping-pong");
    }
    uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
    uint64_t t = start;
    while (t < end) {
        if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1) die("ping-pong");
        uint64_t t2 = now_ns();
        samples_add(&rtt, t2 - t);
        t = t2;
    }
    close(fd);
    waitpid(child, NULL, 0);
    printf("{\"client_cpu\":%d,\"server_cpu\":%d,\"round_trips\":%zu,\"seconds\":%.3f,", client_cpu, server_cpu, rtt.n,
           (double)(t - start) / 1e9);
    print_percentiles(&rtt);
    printf("}\n");
    return 0;
}
