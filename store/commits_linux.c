//go:build linux

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "commits_linux.h"

// The SQLite the binary links (go-sqlite3's, or the system's with its
// libsqlite3 tag). Its header belongs to that package, so what is used is
// declared here.
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
int sqlite3_open_v2(const char *, sqlite3 **, int, const char *);
int sqlite3_close_v2(sqlite3 *);
const char *sqlite3_errmsg(sqlite3 *);
int sqlite3_prepare_v2(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
int sqlite3_step(sqlite3_stmt *);
int sqlite3_bind_int64(sqlite3_stmt *, int, long long);
int sqlite3_bind_text(sqlite3_stmt *, int, const char *, int, void (*)(void *));
int sqlite3_column_count(sqlite3_stmt *);
int sqlite3_reset(sqlite3_stmt *);
int sqlite3_finalize(sqlite3_stmt *);
int sqlite3_column_type(sqlite3_stmt *, int);
long long sqlite3_column_int64(sqlite3_stmt *, int);
const unsigned char *sqlite3_column_text(sqlite3_stmt *, int);
int sqlite3_column_bytes(sqlite3_stmt *, int);
#define SQLITE_OPEN_READONLY 0x00000001
#define SQLITE_ROW 100
#define SQLITE_DONE 101
#define SQLITE_INTEGER 1
#define SQLITE_TEXT 3
#define SQLITE_NULL 5
#define SQLITE_TRANSIENT ((void (*)(void *))-1)

// What is watched, as the Go reports do (notify_linux.go): the files'
// writes, and the directory's entries coming and going.
#define FILE_EVENTS (IN_MODIFY | IN_CLOSE_WRITE)
#define DIR_EVENTS (IN_CREATE | IN_MOVED_TO | IN_DELETE)

// After a report, the writes of one commit come within this; a look that
// finds no new commit (the writer still syncing its WAL) is made again
// after 2, 4, ... 256 ms. The same times as the Go watcher's.
#define COALESCE_NS 1000000L
#define SETTLE_FIRST_MS 2
#define SETTLE_LAST_MS 256

// A signal reads ahead at most this many journal entries (edits come a few
// at a time; a burst is the follower's to read and pace) and this many
// bytes.
#define AHEAD_ENTRIES 64
#define AHEAD_BYTES (1 << 20)

// The row statement's columns: rowid, five texts (id, app, region,
// country, wg_ip), then six integers.
#define ROW_COLUMNS 12

struct commit_watch {
	pthread_t thread;
	int inotify, stop, out;
	char *dir;
	char *names[3]; // the file's, its WAL's and its journal's base names
	char *query;
	sqlite3 *db;
	sqlite3_stmt *look;    // query; NULL while it cannot be prepared
	sqlite3_stmt *version; // PRAGMA data_version alone
	int every;             // read and written atomically
	long long seen;        // data_version at the last look
	int has_pos;           // pos is known
	struct commit_watch_pos pos;
	// The position the last signal was for: the watcher follows to it
	// without a look of its own.
	pthread_mutex_t told_mu;
	int told_ok;
	struct commit_watch_pos told;
	// Reading ahead: the journal's entries and the rows they name.
	char *entries_query;
	sqlite3_stmt *entries; // NULL while it cannot be prepared
	sqlite3_stmt *rows;    // the follower's row statement; NULL: none
	char *rows_query;      // the next one, under told_mu
	int rows_set;          // rows_query was set since the thread took it
	size_t cap;            // of ahead.buf
	struct commit_watch_ahead ahead;
};

static char *join(const char *a, const char *b) {
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);
	if (s) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

static void watch_file(struct commit_watch *w, const char *name) {
	char *p = malloc(strlen(w->dir) + 1 + strlen(name) + 1);
	if (!p)
		return;
	sprintf(p, "%s/%s", w->dir, name);
	inotify_add_watch(w->inotify, p, FILE_EVENTS); // absent: watched when it comes
	free(p);
}

static int ours(struct commit_watch *w, const char *name) {
	for (int i = 0; i < 3; i++)
		if (strcmp(name, w->names[i]) == 0)
			return 1;
	return 0;
}

// drain reads every queued report and reports whether one was of the file
// (a write, or its WAL or journal coming or going); files that came are
// watched.
static int drain(struct commit_watch *w) {
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int named = 0;
	for (;;) {
		ssize_t n = read(w->inotify, buf, sizeof buf);
		if (n <= 0) {
			// An error other than EAGAIN counts as a report: the
			// look decides.
			return named || (n < 0 && errno != EAGAIN && errno != EINTR);
		}
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				named = 1;
			} else if (ev->len == 0) {
				named |= (ev->mask & FILE_EVENTS) != 0;
			} else if (ours(w, ev->name)) {
				named = 1;
				if (ev->mask & (IN_CREATE | IN_MOVED_TO))
					watch_file(w, ev->name);
			}
		}
	}
}

enum look_result { UNCHANGED, OTHER_TABLES, FOLLOWED, FAILED };

// look reads data_version and, where the file has a journal, its position.
// UNCHANGED: no commit since the last look. OTHER_TABLES: commits that
// wrote nothing the follower follows. FOLLOWED: commits it follows, or any
// where it follows every commit or the file has no journal.
static enum look_result look(struct commit_watch *w) {
	if (!w->look && sqlite3_prepare_v2(w->db, w->query, -1, &w->look, NULL) != 0) {
		sqlite3_finalize(w->look);
		w->look = NULL;
	}
	sqlite3_stmt *st = w->look ? w->look : w->version;
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		if (st == w->look) {
			// The journal gone, say: prepared again at the next look.
			sqlite3_finalize(w->look);
			w->look = NULL;
		}
		w->has_pos = 0;
		return FAILED;
	}
	long long version = sqlite3_column_int64(st, 0);
	enum look_result r = FOLLOWED;
	if (version == w->seen) {
		r = UNCHANGED;
	} else if (st == w->look && sqlite3_column_type(st, 1) != SQLITE_NULL) {
		const char *id = (const char *)sqlite3_column_text(st, 1);
		int idlen = sqlite3_column_bytes(st, 1);
		long long schema = sqlite3_column_int64(st, 2), n = sqlite3_column_int64(st, 3);
		int fits = idlen < COMMIT_WATCH_ID_MAX;
		int same = w->has_pos && fits && strcmp(id, w->pos.id) == 0 && schema == w->pos.schema && n == w->pos.n;
		if (same && !__atomic_load_n(&w->every, __ATOMIC_RELAXED))
			r = OTHER_TABLES;
		w->has_pos = fits;
		if (fits)
			memcpy(w->pos.id, id, idlen + 1);
		w->pos.schema = schema;
		w->pos.n = n;
	} else {
		w->has_pos = 0;
	}
	w->seen = version;
	sqlite3_reset(st);
	return r;
}

static void signal_go(struct commit_watch *w, int followed) {
	pthread_mutex_lock(&w->told_mu);
	w->told_ok = followed && w->has_pos;
	if (w->told_ok)
		w->told = w->pos;
	pthread_mutex_unlock(&w->told_mu);
	uint64_t one = 1;
	ssize_t n;
	do
		n = write(w->out, &one, sizeof one);
	while (n < 0 && errno == EINTR);
}

// put appends n bytes to the read ahead; 0 past AHEAD_BYTES or out of
// memory.
static int put(struct commit_watch *w, const void *p, size_t n) {
	struct commit_watch_ahead *a = &w->ahead;
	size_t need = (size_t)a->len + n;
	if (need > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < need)
			cap *= 2;
		char *b = cap <= AHEAD_BYTES ? realloc(a->buf, cap) : NULL;
		if (!b)
			return 0;
		a->buf = b;
		w->cap = cap;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += (int)n;
	return 1;
}

// put_text appends column col of st, which must be a text.
static int put_text(struct commit_watch *w, sqlite3_stmt *st, int col) {
	if (sqlite3_column_type(st, col) != SQLITE_TEXT)
		return 0;
	const unsigned char *t = sqlite3_column_text(st, col);
	uint32_t n = (uint32_t)sqlite3_column_bytes(st, col);
	return put(w, &n, sizeof n) && put(w, t, n);
}

// text returns the text put at offset at of the read ahead, and its length.
static const char *text(struct commit_watch *w, int at, uint32_t *n) {
	memcpy(n, w->ahead.buf + at, sizeof *n);
	return w->ahead.buf + at + sizeof *n;
}

// take_rows prepares the row statement the follower set last, if it set
// one since.
static void take_rows(struct commit_watch *w) {
	pthread_mutex_lock(&w->told_mu);
	char *q = w->rows_query;
	int set = w->rows_set;
	w->rows_query = NULL;
	w->rows_set = 0;
	pthread_mutex_unlock(&w->told_mu);
	if (!set)
		return;
	sqlite3_finalize(w->rows);
	w->rows = NULL;
	if (q && (sqlite3_prepare_v2(w->db, q, -1, &w->rows, NULL) != 0 || sqlite3_column_count(w->rows) != ROW_COLUMNS)) {
		sqlite3_finalize(w->rows);
		w->rows = NULL;
	}
	free(q);
}

// put_row appends the row st is on; 0 where a column is not of the type
// the follower reads it as.
static int put_row(struct commit_watch *w, sqlite3_stmt *st) {
	static const int ints[] = {0, 6, 7, 8, 9, 10, 11};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		if (sqlite3_column_type(st, ints[i]) != SQLITE_INTEGER)
			return 0;
		long long v = sqlite3_column_int64(st, ints[i]);
		if (!put(w, &v, sizeof v))
			return 0;
	}
	for (int i = 1; i <= 5; i++)
		if (!put_text(w, st, i))
			return 0;
	return 1;
}

// fill reads the journal's entries after from up to to, and the backend
// rows they name, once each, into the read ahead. 0 where the follower
// has to read them itself.
static int fill(struct commit_watch *w, long long from, long long to) {
	struct commit_watch_ahead *a = &w->ahead;
	a->len = 0;
	if (!w->rows || to - from > AHEAD_ENTRIES)
		return 0;
	if (!w->entries && sqlite3_prepare_v2(w->db, w->entries_query, -1, &w->entries, NULL) != 0) {
		sqlite3_finalize(w->entries);
		w->entries = NULL;
		return 0;
	}
	int keys[AHEAD_ENTRIES], nkeys = 0; // where the backends' keys are in buf
	uint32_t count = 0;
	if (!put(w, &count, sizeof count))
		return 0;
	sqlite3_bind_int64(w->entries, 1, from);
	sqlite3_bind_int64(w->entries, 2, to);
	int ok = 1, rc;
	while ((rc = sqlite3_step(w->entries)) == SQLITE_ROW) {
		const char *tbl = (const char *)sqlite3_column_text(w->entries, 0);
		uint8_t table = 2;
		if (tbl && strcmp(tbl, "backends") == 0)
			table = 0;
		else if (tbl && strcmp(tbl, "health") == 0)
			table = 1;
		int at = a->len + 1;
		if (table > 1 || count == AHEAD_ENTRIES || !put(w, &table, 1) || !put_text(w, w->entries, 1)) {
			ok = 0;
			break;
		}
		if (table == 0)
			keys[nkeys++] = at;
		count++;
	}
	ok = ok && rc == SQLITE_DONE;
	sqlite3_reset(w->entries);
	// Numbers run without gaps: fewer entries than numbers were pruned.
	if (!ok || count != to - from)
		return 0;
	memcpy(a->buf, &count, sizeof count);

	int rows_at = a->len;
	uint32_t nrows = 0;
	if (!put(w, &nrows, sizeof nrows))
		return 0;
	for (int k = 0; k < nkeys; k++) {
		uint32_t n, m;
		const char *key = text(w, keys[k], &n);
		int seen = 0;
		for (int j = 0; j < k && !seen; j++) {
			const char *other = text(w, keys[j], &m);
			seen = m == n && memcmp(other, key, n) == 0;
		}
		if (seen)
			continue;
		// Copied by SQLite: buf may move as rows are put.
		sqlite3_bind_text(w->rows, 1, key, (int)n, SQLITE_TRANSIENT);
		while ((rc = sqlite3_step(w->rows)) == SQLITE_ROW) {
			if (!put_row(w, w->rows)) {
				ok = 0;
				break;
			}
			nrows++;
		}
		ok = ok && rc == SQLITE_DONE;
		sqlite3_reset(w->rows);
		if (!ok)
			return 0;
	}
	memcpy(a->buf + rows_at, &nrows, sizeof nrows);
	return 1;
}

// read_ahead reads what moved the journal from from to the position the
// last look read, for the follower, unless it has not taken the last.
static void read_ahead(struct commit_watch *w, const struct commit_watch_pos *from) {
	struct commit_watch_ahead *a = &w->ahead;
	if (__atomic_load_n(&a->state, __ATOMIC_SEQ_CST) != 0) {
		__atomic_store_n(&a->behind, 1, __ATOMIC_SEQ_CST);
		return;
	}
	take_rows(w);
	a->from = *from;
	a->to = w->pos;
	a->complete = fill(w, from->n, w->pos.n);
	__atomic_store_n(&a->state, 1, __ATOMIC_SEQ_CST);
}

static void *run(void *arg) {
	struct commit_watch *w = arg;
	// Signals are the Go runtime's to take, on its own threads.
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	int settle = 0; // ms to the next look after one that found nothing new; 0: none due
	for (;;) {
		struct pollfd fds[2] = {{.fd = w->inotify, .events = POLLIN}, {.fd = w->stop, .events = POLLIN}};
		int n = poll(fds, 2, settle > 0 ? settle : -1);
		if (n < 0) {
			// Interrupted, or short of memory for a moment: the
			// follower looks, in case a report was lost, and this
			// thread waits again.
			if (errno != EINTR) {
				signal_go(w, 0);
				struct timespec ts = {0, 10 * COALESCE_NS};
				nanosleep(&ts, NULL);
			}
			continue;
		}
		if (fds[1].revents)
			return NULL;
		int reported = n > 0;
		if (reported) {
			// One commit is many writes, visible only once the last
			// is done: look once, shortly after the first report.
			struct timespec ts = {0, COALESCE_NS};
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
			if (!drain(w))
				continue; // another file of the directory
		}
		struct commit_watch_pos before = w->pos;
		int had = w->has_pos;
		switch (look(w)) {
		case UNCHANGED:
			// Reported before it is visible: the writer syncs its WAL
			// in between. Look again shortly, backing off.
			settle = reported ? SETTLE_FIRST_MS : settle * 2;
			if (settle > SETTLE_LAST_MS)
				settle = 0;
			break;
		case OTHER_TABLES:
			settle = 0;
			break;
		case FOLLOWED:
			settle = 0;
			if (had && w->has_pos && !__atomic_load_n(&w->every, __ATOMIC_RELAXED) && w->pos.n > before.n &&
			    w->pos.schema == before.schema && strcmp(w->pos.id, before.id) == 0)
				read_ahead(w, &before);
			signal_go(w, 1);
			break;
		case FAILED: // the follower looks, and reports the error
			settle = 0;
			signal_go(w, 0);
			break;
		}
	}
}

static void release(struct commit_watch *w) {
	sqlite3_finalize(w->entries);
	sqlite3_finalize(w->rows);
	free(w->entries_query);
	free(w->rows_query);
	free(w->ahead.buf);
	if (w->look)
		sqlite3_finalize(w->look);
	if (w->version)
		sqlite3_finalize(w->version);
	if (w->db)
		sqlite3_close_v2(w->db);
	if (w->inotify >= 0)
		close(w->inotify);
	if (w->stop >= 0)
		close(w->stop);
	for (int i = 0; i < 3; i++)
		free(w->names[i]);
	free(w->dir);
	free(w->query);
	pthread_mutex_destroy(&w->told_mu);
	free(w);
}

struct commit_watch *commit_watch_start(const char *path, const char *query, const char *entries, int out, char *err, int errlen) {
	struct commit_watch *w = calloc(1, sizeof *w);
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&w->told_mu, NULL);
	w->inotify = w->stop = -1;
	w->out = out;
	w->seen = -1;
	w->every = 1;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	w->dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	w->names[0] = strdup(base);
	w->names[1] = join(base, "-wal");
	w->names[2] = join(base, "-journal");
	w->query = strdup(query);
	w->entries_query = strdup(entries);
	if (!w->dir || !w->names[0] || !w->names[1] || !w->names[2] || !w->query || !w->entries_query) {
		snprintf(err, errlen, "out of memory");
		release(w);
		return NULL;
	}
	if (sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READONLY, NULL) != 0 ||
	    sqlite3_prepare_v2(w->db, "PRAGMA data_version", -1, &w->version, NULL) != 0) {
		snprintf(err, errlen, "opening %s to look at its commits: %s", path, w->db ? sqlite3_errmsg(w->db) : "out of memory");
		release(w);
		return NULL;
	}
	w->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	w->stop = eventfd(0, EFD_CLOEXEC);
	if (w->inotify < 0 || w->stop < 0 || inotify_add_watch(w->inotify, w->dir, DIR_EVENTS) < 0) {
		snprintf(err, errlen, "watching %s for writes: %s", w->dir, strerror(errno));
		release(w);
		return NULL;
	}
	// After the directory's watch: a file created meanwhile is reported
	// there, and watched at the drain.
	for (int i = 0; i < 3; i++)
		watch_file(w, w->names[i]);
	// The state the first report is compared with.
	look(w);
	int e = pthread_create(&w->thread, NULL, run, w);
	if (e != 0) {
		snprintf(err, errlen, "starting the commit watch: %s", strerror(e));
		release(w);
		return NULL;
	}
	return w;
}

struct commit_watch_ahead *commit_watch_ahead(struct commit_watch *w) {
	return &w->ahead;
}

void commit_watch_rows(struct commit_watch *w, const char *query) {
	char *q = query ? strdup(query) : NULL;
	pthread_mutex_lock(&w->told_mu);
	free(w->rows_query);
	w->rows_query = q;
	w->rows_set = 1;
	pthread_mutex_unlock(&w->told_mu);
}

void commit_watch_every(struct commit_watch *w, int every) {
	__atomic_store_n(&w->every, every, __ATOMIC_RELAXED);
}

int commit_watch_told(struct commit_watch *w, struct commit_watch_pos *pos) {
	pthread_mutex_lock(&w->told_mu);
	int ok = w->told_ok;
	if (ok)
		*pos = w->told;
	pthread_mutex_unlock(&w->told_mu);
	return ok;
}

void commit_watch_stop(struct commit_watch *w) {
	uint64_t one = 1;
	ssize_t n;
	do
		n = write(w->stop, &one, sizeof one);
	while (n < 0 && errno == EINTR);
	pthread_join(w->thread, NULL);
	release(w);
}
