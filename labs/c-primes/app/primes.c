/*
 * primes counts the primes below a limit with the sieve of Eratosthenes and prints what it
 * found as JSON: a program whose output can be checked (the count, the largest prime and
 * their sum are known), with no library beyond libc.
 *
 * One source, three modes, like lab 12's program:
 *   - CLI:    MODE=once prints one JSON document and exits 0.
 *   - WAGI:   when REQUEST_METHOD is set (a CGI request, as Spin's WAGI executor sends it),
 *             it writes a CGI response to stdout and exits.
 *   - Server: otherwise it serves the JSON over HTTP on PORT (default 8080) until SIGTERM.
 *             WASI preview 1 cannot create a socket, so the WASI build says so and exits 1.
 *
 * LIMIT (default 100000, at most 100000000) changes the limit.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef __wasi__
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#endif

#define DEFAULT_LIMIT 100000L
#define MAX_LIMIT 100000000L

static long limit_from_env(void) {
    const char *text = getenv("LIMIT");
    if (text == NULL || *text == '\0') {
        return DEFAULT_LIMIT;
    }
    char *end = NULL;
    long limit = strtol(text, &end, 10);
    if (*end != '\0' || limit < 2 || limit > MAX_LIMIT) {
        return -1;
    }
    return limit;
}

static int64_t elapsed_us(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - start->tv_sec) * 1000000 + (now.tv_nsec - start->tv_nsec) / 1000;
}

/* The JSON document for the primes below limit, written into out (size bytes). */
static int report(long limit, char *out, size_t size) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    unsigned char *composite = calloc((size_t)limit, 1);
    if (composite == NULL) {
        return -1;
    }
    long count = 0, largest = 0;
    uint64_t sum = 0;
    for (long n = 2; n < limit; n++) {
        if (composite[n]) {
            continue;
        }
        count++;
        largest = n;
        sum += (uint64_t)n;
        for (long multiple = n * n; n <= limit / n && multiple < limit; multiple += n) {
            composite[multiple] = 1;
        }
    }
    free(composite);
    return snprintf(out, size,
                    "{\"program\": \"primes\", \"sieve\": \"eratosthenes\", \"limit\": %ld, "
                    "\"count\": %ld, \"largest\": %ld, \"sum\": %llu, \"sieve_us\": %lld, "
                    "\"timestamp\": %lld}\n",
                    limit, count, largest, (unsigned long long)sum,
                    (long long)elapsed_us(&start), (long long)time(NULL));
}

/* The status a request gets, the same in server and WAGI mode. */
static int route(const char *method, const char *path) {
    if (path[0] != '\0' && strcmp(path, "/") != 0) {
        return 404;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return 405;
    }
    return 200;
}

static const char *reason(int status) {
    return status == 200 ? "OK" : status == 404 ? "Not Found" : "Method Not Allowed";
}

static int run_wagi(long limit) {
    const char *path = getenv("PATH_INFO");
    int status = route(getenv("REQUEST_METHOD"), path ? path : "");
    if (status != 200) {
        printf("Status: %d %s\nContent-Type: text/plain\n\n%s\n", status, reason(status),
               reason(status));
        return 0;
    }
    char body[512];
    if (report(limit, body, sizeof body) < 0) {
        printf("Status: 500 Internal Server Error\nContent-Type: text/plain\n\nout of memory\n");
        return 0;
    }
    printf("Content-Type: application/json\n\n%s", body);
    return 0;
}

#ifdef __wasi__
static int serve(long limit, int port) {
    (void)limit;
    (void)port;
    fprintf(stderr, "primes: server mode needs a socket, which WASI preview 1 cannot create\n");
    return 1;
}
#else
static void on_signal(int signum) {
    (void)signum;
    _exit(0); /* as PID 1 of a container a signal's default action does not apply */
}

static void answer(int client, long limit) {
    char request[4096];
    size_t used = 0;
    while (used < sizeof request - 1 && strstr(request, "\r\n\r\n") == NULL) {
        ssize_t got = read(client, request + used, sizeof request - 1 - used);
        if (got <= 0) {
            return;
        }
        used += (size_t)got;
        request[used] = '\0';
    }
    char method[16] = "", path[1024] = "";
    if (sscanf(request, "%15s %1023s", method, path) != 2) {
        return;
    }
    int status = route(method, path);
    char body[512];
    if (status == 200) {
        if (report(limit, body, sizeof body) < 0) {
            return;
        }
    } else {
        snprintf(body, sizeof body, "%s\n", reason(status));
    }
    char response[1024];
    int length = snprintf(response, sizeof response,
                          "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n%s",
                          status, reason(status), status == 200 ? "application/json" : "text/plain",
                          strlen(body), strcmp(method, "HEAD") == 0 ? "" : body);
    for (int sent = 0; sent < length;) {
        ssize_t wrote = write(client, response + sent, (size_t)(length - sent));
        if (wrote <= 0) {
            return;
        }
        sent += (int)wrote;
    }
}

static int serve(long limit, int port) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 ||
        listen(listener, 64) != 0) {
        perror("primes: cannot listen");
        return 1;
    }
    for (;;) {
        int client = accept(listener, NULL, NULL);
        if (client < 0) {
            continue;
        }
        answer(client, limit);
        close(client);
    }
}
#endif

int main(void) {
    long limit = limit_from_env();
    if (limit < 0) {
        fprintf(stderr, "primes: LIMIT must be a whole number from 2 to %ld\n", MAX_LIMIT);
        return 2;
    }
    const char *method = getenv("REQUEST_METHOD");
    if (method != NULL && *method != '\0') {
        return run_wagi(limit);
    }
    const char *mode = getenv("MODE");
    if (mode != NULL && strcmp(mode, "once") == 0) {
        char body[512];
        if (report(limit, body, sizeof body) < 0) {
            fprintf(stderr, "primes: out of memory\n");
            return 1;
        }
        fputs(body, stdout);
        return 0;
    }
    const char *port = getenv("PORT");
    return serve(limit, port != NULL && *port != '\0' ? atoi(port) : 8080);
}
