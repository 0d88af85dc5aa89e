/*
 * openai.h - the OpenAI Images API's edits reply, apart from the plugin
 * so the fuzz target can read hostile replies with it.
 */
#ifndef FIRESYNC_OPENAI_H
#define FIRESYNC_OPENAI_H

#include "hosted.h"

/*
 * Read a reply: on 200, data[0].b64_json into res (memory from the
 * host); otherwise, or without an image, the reason (err, the log, what
 * the host is told).  FIRESYNC_OK or FIRESYNC_ERROR.
 */
int openai_reply(struct hosted_call *c, const char *body, size_t len,
    struct firesync_result *res, char *err, size_t errlen);

/* The size, of those listed ("WxH, ..."), nearest the aspect ratio w:h;
 * into out.  -1 if the list has none. */
int openai_size(const char *sizes, double w, double h, char *out,
    size_t len);

#endif
