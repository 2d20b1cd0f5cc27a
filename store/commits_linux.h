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

// commit_watch_start watches path and looks at it with query, which returns
// data_version, then the journal's id, the schema version and the journal's
// last entry (a query that cannot be prepared, on a file without a journal,
// leaves data_version alone). It signals out, an eventfd. NULL on failure,
// with why in err.
struct commit_watch *commit_watch_start(const char *path, const char *query, int out, char *err, int errlen);

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
