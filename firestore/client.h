/*
 * client.h - the Firestore client's insides, shared by the files of this
 * layer only (firestore.c, targets.c); everyone else sees struct
 * fs_client as opaque (firestore.h).
 */
#ifndef FIRESYNC_CLIENT_H
#define FIRESYNC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "firestore.h"
#include "pb.h"

struct fs_client {
	void *channel;			/* grpc_channel * */
	void (*refused)(void *arg, const char *token);
	void *token_arg;
	char last_token[2048];		/* the last one sent, for refused */
	void *token_lock;		/* pthread_mutex_t *, guards it */
	char *project;
	char *database;
	char *db_path;			/* projects/P/databases/D */
	char *docs_path;		/* db_path + "/documents" */
	bool emulator;
	void *token_plugin;		/* struct token_plugin *, or NULL */
};

/*
 * The request adding query as Listen target id, resuming from
 * resume_token when there is one; or one document (full name).  Caller
 * frees with protobuf_c_message_free_unpacked.
 */
FsListenRequest *fs_listen_target(const struct fs_client *c, int32_t id,
    const struct fs_query *query, const uint8_t *resume_token,
    size_t resume_len);
FsListenRequest *fs_listen_document(const struct fs_client *c, int32_t id,
    const char *name);
/* The RunQuery request for query; freed the same way. */
Google__Firestore__V1__RunQueryRequest *fs_query_request(
    const struct fs_client *c, const struct fs_query *query);

#endif
