/* tp_spool: journals, marks, orphans, dead letters, stats. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tp_check.h"
#include "tp_spool.h"

#define E1 "{\"create\":{\"_index\":\"events\",\"_id\":\"a\"}}\n{\"date\":1000,\"n\":1}\n"
#define E2 "{\"create\":{\"_index\":\"events\",\"_id\":\"b\"}}\n{\"date\":2000,\"n\":2}\n"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tp-spool-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static long count_files(const char *prefix)
{
    char cmd[256], buf[32];
    FILE *p;
    long n = -1;

    snprintf(cmd, sizeof(cmd), "ls -A %s | grep -c '^%s' || true", dir, prefix);
    p = popen(cmd, "r");
    if (p && fgets(buf, sizeof(buf), p))
        n = strtol(buf, NULL, 10);
    if (p)
        pclose(p);
    return n;
}

START_TEST(append_pending_mark_truncate)
{
    char err[256];
    tp_journal *j;
    off_t s1, e1, s2, e2;
    const char *data;
    size_t len;
    const off_t *offs;
    struct stat st;

    make_dir();
    j = tp_journal_create(dir, 0, err, sizeof(err));
    ck_assert_msg(j != NULL, "%s", err);
    ck_assert_int_eq(tp_journal_append(j, E1, strlen(E1), &s1, &e1, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_append(j, E2, strlen(E2), &s2, &e2, err, sizeof(err)), 0);
    ck_assert_int_eq(s1, 0);
    ck_assert_int_eq(e1, (off_t)strlen(E1));
    ck_assert_int_eq(s2, e1);
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &data, &len, &offs, err, sizeof(err)), 2);
    ck_assert_uint_eq(len, strlen(E1 E2));
    ck_assert_int_eq(memcmp(data, E1 E2, len), 0);
    ck_assert_int_eq(offs[0], e1);
    ck_assert_int_eq(offs[1], e2);
    /* One at a time, and a byte limit smaller than one entry still gives one. */
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 1, 10, &data, &len, &offs, err, sizeof(err)), 1);
    ck_assert_uint_eq(len, strlen(E1));

    ck_assert_int_eq(tp_journal_mark(j, e1, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_done(j), e1);
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &data, &len, &offs, err, sizeof(err)), 1);
    ck_assert_int_eq(memcmp(data, E2, len), 0);
    ck_assert_int_eq(tp_journal_mark(j, e1 - 5, err, sizeof(err)), 0);   /* never back */
    ck_assert_int_eq(tp_journal_done(j), e1);
    /* All delivered: truncated to zero. */
    ck_assert_int_eq(tp_journal_mark(j, e2, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_size(j), 0);
    ck_assert_int_eq(stat(tp_journal_path(j), &st), 0);
    ck_assert_int_eq(st.st_size, 0);
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &data, &len, &offs, err, sizeof(err)), 0);
    ck_assert_int_eq(count_files("journal."), 2);   /* the journal and its .done */
    tp_journal_close(j);                             /* empty: removed */
    ck_assert_int_eq(count_files("journal."), 0);
}
END_TEST

START_TEST(orphan_claimed_only_when_its_worker_is_gone)
{
    char err[256], path[512] = "";
    int fds[2];
    pid_t pid;
    tp_journal *j;
    const char *data;
    size_t len;
    const off_t *offs;
    off_t s, e;

    make_dir();
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        /* A worker: two entries, one delivered, then it waits and dies. */
        tp_journal *w = tp_journal_create(dir, 0, err, sizeof(err));
        if (!w || tp_journal_append(w, E1, strlen(E1), &s, &e, err, sizeof(err)) < 0 ||
            tp_journal_append(w, E2, strlen(E2), &s, &e, err, sizeof(err)) < 0 ||
            tp_journal_mark(w, (off_t)strlen(E1), err, sizeof(err)) < 0)
            _exit(1);
        if (write(fds[1], tp_journal_path(w), strlen(tp_journal_path(w))) < 0)
            _exit(1);
        close(fds[1]);
        for (;;)
            pause();                                 /* until the SIGKILL below */
    }
    close(fds[1]);
    ck_assert_int_gt(read(fds[0], path, sizeof(path) - 1), 0);
    j = tp_journal_claim(path, err, sizeof(err));
    ck_assert_ptr_null(j);                           /* alive: not claimed */
    ck_assert_str_eq(err, "");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    j = tp_journal_claim(path, err, sizeof(err));
    ck_assert_msg(j != NULL, "claim: %s", err);
    ck_assert_int_eq(tp_journal_done(j), (off_t)strlen(E1));
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &data, &len, &offs, err, sizeof(err)), 1);
    ck_assert_int_eq(memcmp(data, E2, len), 0);
    ck_assert_int_eq(tp_journal_mark(j, offs[0], err, sizeof(err)), 0);
    tp_journal_close(j);
    ck_assert_int_eq(count_files("journal."), 0);
    close(fds[0]);
}
END_TEST

START_TEST(incomplete_entry_is_skipped_in_an_orphan)
{
    char err[256], path[512];
    int fd;
    tp_journal *j;
    const char *data;
    size_t len;
    const off_t *offs;

    make_dir();
    snprintf(path, sizeof(path), "%s/journal.1.x.ndjson", dir);
    fd = open(path, O_WRONLY | O_CREAT, 0640);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, E1, strlen(E1)), (ssize_t)strlen(E1));
    ck_assert_int_eq(write(fd, "{\"create\":", 10), 10);    /* cut short */
    close(fd);
    j = tp_journal_claim(path, err, sizeof(err));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &data, &len, &offs, err, sizeof(err)), 1);
    ck_assert_int_eq(tp_journal_mark(j, offs[0], err, sizeof(err)), 0);
    /* The cut-short entry: no whole entry left, the caller skips it. */
    ck_assert_int_lt(tp_journal_done(j), tp_journal_size(j));
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &data, &len, &offs, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_mark(j, tp_journal_size(j), err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_done(j), tp_journal_size(j));
    tp_journal_close(j);
    ck_assert_int_eq(count_files("journal."), 0);
}
END_TEST

START_TEST(dead_letter_line_and_stats)
{
    char err[256], path[512], line[1024];
    tp_spool_stat st;
    tp_journal *j;
    off_t s, e;
    FILE *f;

    make_dir();
    ck_assert_int_eq(tp_spool_deadletter(dir, "events", "id-1", 400, "HTTP 400: mapper_parsing_exception",
                                         "{\"a\":1}", 7, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/" TP_SPOOL_DEADLETTER, dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    fclose(f);
    /* {"time":"...Z","status":400,...}: check all but the time. */
    ck_assert_ptr_nonnull(strstr(line, "\"status\":400,\"reason\":\"HTTP 400: mapper_parsing_exception\","
                                       "\"_index\":\"events\",\"_id\":\"id-1\",\"document\":{\"a\":1}}\n"));
    ck_assert_int_eq(strncmp(line, "{\"time\":\"", 9), 0);

    j = tp_journal_create(dir, 1, err, sizeof(err));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(tp_journal_append(j, E2, strlen(E2), &s, &e, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_append(j, E1, strlen(E1), &s, &e, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_spool_stat_dir(dir, 1, &st, err, sizeof(err)), 0);
    ck_assert_int_eq(st.journals, 1);
    ck_assert_int_eq(st.orphans, 0);            /* we hold it */
    ck_assert_int_eq(st.entries, 2);
    ck_assert_int_eq(st.bytes, (long long)strlen(E1 E2));
    ck_assert_int_eq(st.oldest_ms, 2000);       /* the first pending entry's date */
    ck_assert_int_eq(st.deadletters, 1);
    tp_journal_close(j);                         /* pending: kept */
    ck_assert_int_eq(tp_spool_stat_dir(dir, 1, &st, err, sizeof(err)), 0);
    ck_assert_int_eq(st.orphans, 1);
}
END_TEST

/* The document is doc_len bytes of a larger buffer (a journal's, where the
 * next entry follows): only those are read.  (They were read as a C string:
 * past the end of the buffer for its last entry, which ASan caught.) */
START_TEST(dead_letter_doc_is_bounded)
{
    char err[256], path[512], line[1024];
    char *exact = malloc(7);               /* {"a":1} without a NUL */
    FILE *f;

    make_dir();
    ck_assert_ptr_nonnull(exact);
    memcpy(exact, "{\"a\":1}", 7);
    ck_assert_int_eq(tp_spool_deadletter(dir, "events", "id-1", 400, "r", exact, 7,
                                         err, sizeof(err)), 0);
    /* The first 5 bytes are not JSON: kept as a string, not parsed on. */
    ck_assert_int_eq(tp_spool_deadletter(dir, "events", "id-2", 400, "r", exact, 5,
                                         err, sizeof(err)), 0);
    free(exact);
    snprintf(path, sizeof(path), "%s/" TP_SPOOL_DEADLETTER, dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    ck_assert_ptr_nonnull(strstr(line, "\"_id\":\"id-1\",\"document\":{\"a\":1}}\n"));
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    ck_assert_ptr_nonnull(strstr(line, "\"_id\":\"id-2\",\"document\":\"{\\\"a\\\":\"}\n"));
    fclose(f);
}
END_TEST

START_TEST(entry_doc)
{
    const char *doc;
    size_t len;

    ck_assert_int_eq(tp_spool_entry_doc(E1, strlen(E1), &doc, &len), 0);
    ck_assert_uint_eq(len, strlen("{\"date\":1000,\"n\":1}"));
    ck_assert_int_eq(memcmp(doc, "{\"date\":1000,\"n\":1}", len), 0);
    ck_assert_int_eq(tp_spool_entry_doc("no newline", 10, &doc, &len), -1);
}
END_TEST

START_TEST(create_fails_clearly)
{
    char err[256];
    ck_assert_ptr_null(tp_journal_create("/proc/no-such/spool", 0, err, sizeof(err)));
    ck_assert_str_eq(err, "TRACKPIXEL_SPOOL_DIR: cannot create /proc/no-such: No such file or directory");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("journal");
    tcase_add_test(tc, append_pending_mark_truncate);
    tcase_add_test(tc, orphan_claimed_only_when_its_worker_is_gone);
    tcase_add_test(tc, incomplete_entry_is_skipped_in_an_orphan);
    tcase_add_test(tc, dead_letter_line_and_stats);
    tcase_add_test(tc, dead_letter_doc_is_bounded);
    tcase_add_test(tc, entry_doc);
    tcase_add_test(tc, create_fails_clearly);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
