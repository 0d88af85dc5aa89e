/*
 * fuzz_documents.c - libFuzzer target: what a Firestore server sends.
 * The first byte picks the path: even, the bytes are one Document decoded
 * as a session and as an experience; odd, they are a stream of
 * length-prefixed ListenResponses fed to a watch with trimming, as the
 * engine runs it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session.h"
#include "value.h"
#include "watch.h"

static FsDocument *
trim(FsDocument *doc, void *arg)
{
	(void)arg;
	return doc;
}

static void
documents(const uint8_t *p, size_t n)
{
	FsDocument *d = google__firestore__v1__document__unpack(NULL, n, p);
	struct experience x;
	struct session s;
	char err[256];
	int64_t v;

	if (d == NULL)
		return;
	session_decode(d, &s, err, sizeof(err));
	session_clear(&s);
	memset(&x, 0, sizeof(x));
	experience_decode(d, &x, err, sizeof(err));
	experience_clear(&x);
	value_get_int64(doc_get(d, "transformAttempts"), &v);
	doc_free(doc_dup(d));
	doc_free(d);
}

static void
stream(const uint8_t *p, size_t n)
{
	struct watch w;

	watch_init(&w);
	watch_add_target(&w, 1);
	watch_add_target(&w, 2);
	watch_set_trim(&w, 1, trim, NULL);
	while (n >= 4) {
		uint32_t len;
		FsListenResponse *r;
		char err[256];

		memcpy(&len, p, 4);
		len = ntohl(len);
		p += 4;
		n -= 4;
		if (len > n)
			break;
		r = google__firestore__v1__listen_response__unpack(NULL, len, p);
		if (r != NULL) {
			if (watch_feed(&w, r, err, sizeof(err)) ==
			    WATCH_RESTART)
				watch_stream_started(&w);
			google__firestore__v1__listen_response__free_unpacked(
			    r, NULL);
		}
		p += len;
		n -= len;
	}
	watch_clear(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	log_level = -1;
	if (size < 1)
		return 0;
	if (data[0] & 1)
		stream(data + 1, size - 1);
	else
		documents(data + 1, size - 1);
	return 0;
}
