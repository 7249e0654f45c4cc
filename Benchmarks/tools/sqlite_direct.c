/* Direct SQLite state access: the same statements Mecha's state.sqlite runs (same table layout as
 * Dapr's SQLite store, WAL, synchronous=NORMAL, BEGIN IMMEDIATE around writes), without HTTP.
 *   sqlite_direct DB prepare KEYS VALUE_BYTES PREFIX
 *   sqlite_direct DB get|set RATE SECONDS KEYS VALUE_BYTES PREFIX
 * RATE is operations per second (0: back to back). One connection, one thread, as Mecha uses one
 * connection per store. Prints throughput and per-operation latency percentiles. */
#include "common.h"

#include <sqlite3.h>

static sqlite3 *db;

static void check(int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "sqlite error %d in %s: %s\n", rc, what, sqlite3_errmsg(db));
        exit(2);
    }
}

static void exec(const char *sql) { check(sqlite3_exec(db, sql, NULL, NULL, NULL), sql); }

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A random UUID string, as Mecha's ETags. */
static void uuid(char out[37]) {
    uint64_t a = next_random(), b = next_random();
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
             ((unsigned)(b >> 48) & 0x3fff) | 0x8000, (unsigned long long)(b & 0xffffffffffffull));
}

static const char *GET_SQL =
    "SELECT value, is_binary, etag, expiration_time FROM state WHERE key = ? AND "
    "(expiration_time IS NULL OR expiration_time > CURRENT_TIMESTAMP)";
static const char *SET_SQL =
    "INSERT INTO state (key, value, is_binary, etag, expiration_time, update_time) "
    "VALUES (?5, ?1, ?2, ?3, CASE WHEN ?4 IS NULL THEN NULL ELSE DATETIME(CURRENT_TIMESTAMP, ?4) END, CURRENT_TIMESTAMP) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, is_binary = excluded.is_binary, etag = excluded.etag, "
    "expiration_time = excluded.expiration_time, update_time = excluded.update_time";

static sqlite3_stmt *get_stmt, *set_stmt;
static char *value;
static char key[128];

static void make_key(const char *prefix, long i) { snprintf(key, sizeof key, "%sk%ld", prefix, i); }

static void do_set(void) {
    char etag[37];
    uuid(etag);
    exec("BEGIN IMMEDIATE");
    sqlite3_bind_text(set_stmt, 1, value, -1, SQLITE_STATIC);
    sqlite3_bind_int(set_stmt, 2, 0);
    sqlite3_bind_text(set_stmt, 3, etag, -1, SQLITE_TRANSIENT);
    sqlite3_bind_null(set_stmt, 4);
    sqlite3_bind_text(set_stmt, 5, key, -1, SQLITE_TRANSIENT);
    check(sqlite3_step(set_stmt), "set");
    sqlite3_reset(set_stmt);
    exec("COMMIT");
}

static size_t do_get(void) {
    sqlite3_bind_text(get_stmt, 1, key, -1, SQLITE_TRANSIENT);
    size_t bytes = 0;
    int rc;
    while ((rc = sqlite3_step(get_stmt)) == SQLITE_ROW) {
        bytes += (size_t)sqlite3_column_bytes(get_stmt, 0);
        (void)sqlite3_column_text(get_stmt, 2);
    }
    check(rc, "get");
    sqlite3_reset(get_stmt);
    return bytes;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sqlite_direct DB prepare KEYS VALUE_BYTES PREFIX | DB get|set RATE SECONDS KEYS VALUE_BYTES PREFIX\n");
        return 2;
    }
    const char *path = argv[1], *mode = argv[2];
    int prepare = strcmp(mode, "prepare") == 0;
    if ((prepare && argc != 6) || (!prepare && argc != 8)) {
        fprintf(stderr, "wrong number of arguments\n");
        return 2;
    }
    double rate = prepare ? 0 : atof(argv[3]);
    double seconds = prepare ? 0 : atof(argv[4]);
    long keys = atol(argv[prepare ? 3 : 5]);
    long value_bytes = atol(argv[prepare ? 4 : 6]);
    const char *prefix = argv[prepare ? 5 : 7];

    /* A JSON value of value_bytes bytes: {"d":"xxxx…"} (stored as text, is_binary = 0, as Mecha does). */
    if (value_bytes < 9) value_bytes = 9;
    value = malloc((size_t)value_bytes + 1);
    memset(value, 'x', (size_t)value_bytes);
    memcpy(value, "{\"d\":\"", 6);
    memcpy(value + value_bytes - 2, "\"}", 2);
    value[value_bytes] = 0;

    check(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_URI, NULL),
          "open");
    sqlite3_busy_timeout(db, 5000);
    sqlite3_extended_result_codes(db, 1);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("CREATE TABLE IF NOT EXISTS metadata (key text NOT NULL PRIMARY KEY, value text NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS state (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL, is_binary BOOLEAN NOT NULL, "
         "etag TEXT NOT NULL, expiration_time TIMESTAMP DEFAULT NULL, update_time TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)");
    check(sqlite3_prepare_v3(db, GET_SQL, -1, SQLITE_PREPARE_PERSISTENT, &get_stmt, NULL), "prepare get");
    check(sqlite3_prepare_v3(db, SET_SQL, -1, SQLITE_PREPARE_PERSISTENT, &set_stmt, NULL), "prepare set");

    if (prepare) {
        for (long i = 0; i < keys; i++) {
            make_key(prefix, i);
            do_set();
        }
        printf("{\"prepared\":%ld,\"sqlite_version\":\"%s\"}\n", keys, sqlite3_libversion());
        return 0;
    }
    int is_set = strcmp(mode, "set") == 0;
    samples_t lat = {0};
    long ops = 0, missing = 0;
    uint64_t period = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
    uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9), next = start;
    uint64_t t = start;
    while (t < end) {
        if (period) {
            sleep_until_ns(next);
            next += period;
        }
        make_key(prefix, ops % keys);
        uint64_t t0 = now_ns();
        if (is_set)
            do_set();
        else if (do_get() == 0)
            missing++;
        t = now_ns();
        samples_add(&lat, t - t0);
        ops++;
    }
    double elapsed = (double)(t - start) / 1e9;
    printf("{\"mode\":\"%s\",\"rate\":%.0f,\"ops\":%ld,\"missing\":%ld,\"seconds\":%.3f,\"ops_per_s\":%.1f,\"sqlite_version\":\"%s\",",
           mode, rate, ops, missing, elapsed, (double)ops / elapsed, sqlite3_libversion());
    print_percentiles(&lat);
    printf("}\n");
    sqlite3_finalize(get_stmt);
    sqlite3_finalize(set_stmt);
    sqlite3_close(db);
    return 0;
}
