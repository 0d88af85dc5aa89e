/*
 * pb.h - short names for the protobuf-c types generated from proto/.
 *
 * The generated names (Google__Firestore__V1__Value...) make every
 * signature three lines long; these aliases keep the code readable.  They
 * name generated types only; our own structs are never typedef'd.
 */
#ifndef FIRESYNC_PB_H
#define FIRESYNC_PB_H

#include "google/firestore/v1/common.pb-c.h"
#include "google/firestore/v1/document.pb-c.h"
#include "google/firestore/v1/firestore.pb-c.h"
#include "google/firestore/v1/query.pb-c.h"
#include "google/firestore/v1/write.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "google/type/latlng.pb-c.h"

typedef Google__Firestore__V1__Value FsValue;
typedef Google__Firestore__V1__MapValue FsMapValue;
typedef Google__Firestore__V1__MapValue__FieldsEntry FsMapEntry;
typedef Google__Firestore__V1__ArrayValue FsArrayValue;
typedef Google__Firestore__V1__Document FsDocument;
typedef Google__Firestore__V1__Document__FieldsEntry FsDocEntry;
typedef Google__Protobuf__Timestamp FsTimestamp;
typedef Google__Firestore__V1__ListenResponse FsListenResponse;
typedef Google__Firestore__V1__ListenRequest FsListenRequest;
typedef Google__Firestore__V1__TargetChange FsTargetChange;
typedef Google__Firestore__V1__Write FsWrite;
typedef Google__Firestore__V1__CommitRequest FsCommitRequest;
typedef Google__Firestore__V1__CommitResponse FsCommitResponse;

#define FSV(kind)	GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_##kind
#define FSLR(kind)	GOOGLE__FIRESTORE__V1__LISTEN_RESPONSE__RESPONSE_TYPE_##kind
#define FSTC(kind)	GOOGLE__FIRESTORE__V1__TARGET_CHANGE__TARGET_CHANGE_TYPE__##kind

#endif
