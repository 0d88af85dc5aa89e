/*
 * record_listen.c - records what the Firestore emulator really sends on a
 * Listen stream, for test_watch.c to replay (tests/data/emulator-listen.bin).
 *
 * Scenario, on a fresh emulator: listen to sessions in state captured;
 * capture a; capture b; a becomes ready (leaves the query); delete b;
 * capture c.  Each response is written as a 4-byte big-endian length and
 * its protobuf bytes; a zero length marks the end of a step.  Regenerate
 * with:  tests/record-listen tests/data/emulator-listen.bin
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "alloc.h"
#include "emulator.h"
#include "log.h"
#include "watch.h"

#define EMU "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/" \
	"cloud_firestore_emulator"

static FILE *out;

static void
put(const FsListenResponse *r)
{
	size_t n = google__firestore__v1__listen_response__get_packed_size(r);
	uint8_t *b = xmalloc(n);
	uint32_t be = htonl((uint32_t)n);

	google__firestore__v1__listen_response__pack(r, b);
	fwrite(&be, 4, 1, out);
	fwrite(b, 1, n, out);
	free(b);
}

/* Record responses for ms, then a step marker. */
static void
drain(struct fs_listen *l, int ms)
{
	int64_t end = test_now_ms() + ms;
	uint32_t zero = 0;

	while (test_now_ms() < end) {
		FsListenResponse *r;

		if (fs_listen_next(l, 50, &r) == 1) {
			put(r);
			google__firestore__v1__listen_response__free_unpacked(r,
			    NULL);
		}
	}
	fwrite(&zero, 4, 1, out);
}

static void
session(struct fs_client *c, const char *id, const char *state)
{
	FsValue *f = session_fields("E", id, "exp", "captures/E/x/input.jpg",
	    1700000000000);
	char path[64];

	value_map_put(f, "state", value_string(state));
	snprintf(path, sizeof(path), "events/E/sessions/%s", id);
	admin_set(c, path, f);
}

int
main(int argc, char **argv)
{
	struct emulator em = { 0 };
	struct fs_client *c;
	struct fs_listen *l;
	FsWrite w = GOOGLE__FIRESTORE__V1__WRITE__INIT, *ws[1] = { &w };
	struct fs_status st;

	if (argc != 2) {
		fprintf(stderr, "usage: record-listen OUT\n");
		return 2;
	}
	log_init();
	if (emulator_start(&em, EMU, 0) < 0)
		fatal("no emulator");
	grpc_init();
	c = admin_client(em.host, "record");
	out = fopen(argv[1], "wb");
	l = admin_listen_state(c, "captured");
	drain(l, 1500);			/* step 0: the empty start */
	session(c, "a", "captured");
	drain(l, 800);			/* step 1: a */
	session(c, "b", "captured");
	drain(l, 800);			/* step 2: a, b */
	session(c, "a", "ready");
	drain(l, 800);			/* step 3: b */
	w.operation_case = GOOGLE__FIRESTORE__V1__WRITE__OPERATION_DELETE;
	w.delete_ = xasprintf("%s/events/E/sessions/b", fs_docs_path(c));
	fs_commit(c, ws, 1, 10000, NULL, &st);
	free(w.delete_);
	drain(l, 800);			/* step 4: nothing */
	session(c, "c", "captured");
	drain(l, 800);			/* step 5: c */
	fclose(out);
	fs_listen_close(l, NULL);
	fs_client_free(c);
	grpc_shutdown();
	emulator_stop(&em);
	return 0;
}
