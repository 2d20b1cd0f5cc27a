/*
 * The least a follower of a SQLite file pays for a commit, without a Go
 * runtime: it waits for the kernel's report of a write to the WAL, waits
 * 1 ms as the store's watcher does, drains the reports and looks at
 * PRAGMA data_version. bench/table builds it with cc and the system's
 * libsqlite3, and reads its CPU over the same commits as the servers'.
 *
 * usage: floor DB (the file's WAL must exist)
 */
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char wal[4096], buf[4096];
	sqlite3 *db;
	sqlite3_stmt *st;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: floor DB\n");
		return 2;
	}
	snprintf(wal, sizeof wal, "%s-wal", argv[1]);
	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "floor: %s: %s\n", argv[1], sqlite3_errmsg(db));
		return 1;
	}
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0 || inotify_add_watch(fd, wal, IN_MODIFY) < 0) {
		perror("floor: inotify");
		return 1;
	}
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, -1) < 1)
			continue;
		usleep(1000);
		while (read(fd, buf, sizeof buf) > 0)
			;
		sqlite3_step(st);
		sqlite3_reset(st);
	}
}
