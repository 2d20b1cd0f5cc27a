// The commit watch: a thread of its own, outside the Go runtime, that
// waits for the kernel's reports of writes to a database file, looks at the
// file once a commit is visible, and writes to an eventfd only when the
// commit moved what the follower follows. See commits_linux.go.

#include <pthread.h>

struct commit_watch;

// A position in the change journal: its id (NUL-terminated), the schema
// version and the last entry.
#define COMMIT_WATCH_ID_MAX 64
struct commit_watch_pos {
	char id[COMMIT_WATCH_ID_MAX];
	long long schema, n;
};

// What the thread read ahead for the follower at a signal: the journal's
// entries after from up to to, and the backend rows they name. The thread
// writes one only while state is 0, then sets it to 1; the follower reads
// it and sets state back to 0, with no call into C. behind is set when a
// signal found the last read ahead not yet taken, and had none of its own.
// complete is 0 where the read ahead cannot stand for the follower's own
// (a table other than backends or health, a value of another type than
// the follower reads, too many entries, an error): the follower reads.
//
// buf holds the entries, then the rows, each list a count (uint32) and its
// items. An entry: its table (uint8: 0 backends, 1 health) and its key. A
// row: rowid, port, healthy, weight, soft_limit, hard_limit and deleted
// (int64), then id, app, region, country and wg_ip. A text is its length
// (uint32) and its bytes. Native byte order.
struct commit_watch_ahead {
	int state, behind, complete;
	struct commit_watch_pos from, to;
	char *buf;
	int len;
};

// commit_watch_start watches path and looks at it with query, which returns
// data_version, then the journal's id, the schema version and the journal's
// last entry (a query that cannot be prepared, on a file without a journal,
// leaves data_version alone). It reads the journal's entries ahead with
// entries, which takes the first and last entry numbers and returns each
// entry's table and key. It signals out, an eventfd. NULL on failure, with
// why in err.
struct commit_watch *commit_watch_start(const char *path, const char *query, const char *entries, int out, char *err, int errlen);

// commit_watch_ahead is where the watch's reads ahead are, for its life.
struct commit_watch_ahead *commit_watch_ahead(struct commit_watch *w);

// commit_watch_rows sets the statement the backend rows are read ahead
// with: the follower's own, taking the row's id. NULL: none are read ahead.
void commit_watch_rows(struct commit_watch *w, const char *query);

// commit_watch_every makes the watch signal every visible commit (1), or
// only those that moved the journal's position (0, the default once set).
void commit_watch_every(struct commit_watch *w, int every);

// commit_watch_told copies the journal's position the thread's last signal
// was for into pos and returns 1; 0 where that signal had none (a failed
// look, a file without journal).
int commit_watch_told(struct commit_watch *w, struct commit_watch_pos *pos);

// commit_watch_stop ends the thread, waits for it, and frees the watch. The
// eventfd out is the caller's to close, after.
void commit_watch_stop(struct commit_watch *w);
