/*
 * job.c - one transform job: decode the capture (upright, within the pixel
 * limit), crop it to the aspect ratio, decode the references, run the
 * plugin, check what it returned and encode the PNG.  Runs in a worker
 * process (worker.c); firesync-transform --in-process calls it directly to
 * measure what the isolation costs.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "alloc.h"
#include "finish.h"
#include "image.h"
#include "job.h"
#include "log.h"
#include "text.h"

#define REF_MAX_PIXELS 1000000

void
job_error(struct wire_result *r, int status, const char *plugin,
    const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	snprintf(r->plugin, sizeof(r->plugin), "%s", plugin ? plugin : "");
	va_start(ap, fmt);
	text_vformat(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
}

/*
 * The photo's shape (pw x ph) as a ratio of small numbers, into out:
 * what a result of another shape is cropped to when the experience asks
 * for none ("keep the photo's"): a hosted model answers in sizes of its
 * own.  Empty when the result (w x h) is within 1% of it already, so a
 * look that keeps the photo's pixels is never cropped.
 */
static void
photo_shape(uint32_t pw, uint32_t ph, uint32_t w, uint32_t h, char *out,
    size_t len)
{
	double want = (double)pw / ph, best = 0;
	uint32_t bw = 0, bh = 0;

	out[0] = '\0';
	if (pw == 0 || ph == 0 || fabs(log((double)w / h / want)) <= 0.01)
		return;
	for (uint32_t uh = 1; uh <= 64; uh++) {
		uint32_t uw = (uint32_t)lround(want * uh);
		double e;

		if (uw == 0 || uw > 640)
			continue;
		e = fabs(log((double)uw / uh / want));
		if (bw == 0 || e < best - 1e-12) {
			bw = uw;
			bh = uh;
			best = e;
		}
	}
	if (bw)
		snprintf(out, len, "%u:%u", bw, bh);
}

/* Centre-crop a plugin's result to the aspect ratio asked for, or to the
 * photo's (pw x ph) when none is, when it is not already that shape (a
 * hosted model makes its own sizes). */
static int
crop_result(const char *name, const char *ratio, uint32_t pw, uint32_t ph,
    struct image *img, struct wire_result *r)
{
	char err[256], shape[32];

	if (*ratio == '\0') {
		photo_shape(pw, ph, img->width, img->height, shape,
		    sizeof(shape));
		ratio = shape;
	}
	if (image_crop_aspect(img, ratio, err, sizeof(err)) < 0) {
		job_error(r, WIRE_BAD_RESULT, name, "plugin %s returned an "
		    "image that cannot be cropped to %s: %s", name, ratio,
		    err);
		return -1;
	}
	return 0;
}

/*
 * Check what a plugin returned and crop it to the aspect ratio, into img
 * (pixels of its own).  *as_png is the plugin's own PNG bytes (res's)
 * when img is exactly what they hold, else NULL.  0, or -1 with r's
 * error.
 */
static int
take_result(uint64_t max_output, const char *name, const char *ratio,
    uint32_t pw, uint32_t ph, const struct firesync_result *res,
    uint64_t max_pixels, struct image *img, const uint8_t **as_png,
    struct wire_result *r)
{
	char err[512];

	*as_png = NULL;
	if (res->pixels != NULL) {
		uint64_t row = (uint64_t)res->width * res->channels;

		if (res->width == 0 || res->height == 0 ||
		    res->width > 65535 || res->height > 65535 ||
		    (uint64_t)res->width * res->height > max_pixels ||
		    (res->channels != 3 && res->channels != 4) ||
		    res->stride < row ||
		    (uint64_t)res->stride * res->height >
		    malloc_usable_size(res->pixels)) {
			job_error(r, WIRE_BAD_RESULT, name, "plugin %s "
			    "returned an invalid image (%ux%u, %u channels, "
			    "stride %u)", name, res->width, res->height,
			    res->channels, res->stride);
			return -1;
		}
		img->width = res->width;
		img->height = res->height;
		img->channels = res->channels;
		/* a copy of our own, which cropping may replace */
		img->pixels = xmalloc((size_t)row * res->height);
		for (uint32_t y = 0; y < res->height; y++)
			memcpy(img->pixels + (size_t)y * row,
			    res->pixels + (size_t)y * res->stride, row);
		if (crop_result(name, ratio, pw, ph, img, r) < 0) {
			image_free(img);
			return -1;
		}
		return 0;
	}
	if (res->data != NULL && res->data_len > 0 &&
	    res->data_len <= max_output &&
	    res->data_len <= malloc_usable_size(res->data) &&
	    (res->encoding == FIRESYNC_ENCODING_PNG ||
	     res->encoding == FIRESYNC_ENCODING_JPEG)) {
		uint32_t w, h;

		/* decode to be sure it is what it says, within limits */
		if (image_decode(res->data, res->data_len, max_pixels, img,
		    err, sizeof(err)) < 0) {
			job_error(r, WIRE_BAD_RESULT, name, "plugin %s "
			    "returned an image that does not decode", name);
			return -1;
		}
		w = img->width;
		h = img->height;
		if (crop_result(name, ratio, pw, ph, img, r) < 0) {
			image_free(img);
			return -1;
		}
		if (image_sniff(res->data, res->data_len) == IMAGE_PNG &&
		    img->width == w && img->height == h)
			*as_png = res->data;
		return 0;
	}
	job_error(r, WIRE_BAD_RESULT, name, "plugin %s returned no "
	    "usable image", name);
	return -1;
}

/* Where the frame starts in the job's buffer: after the capture and the
 * references. */
static const uint8_t *
frame_of(const struct wire_job *job, const uint8_t *mem)
{
	uint64_t off = job->input_len;

	for (uint32_t i = 0; i < job->n_refs; i++)
		off += job->ref_len[i];
	return mem + off;
}

/*
 * The result's last steps, after the model: the cap on its size, the
 * event's frame, the PNG (the plugin's own bytes, as_png of as_png_len,
 * when nothing changed) and the renditions, into out.  The frame failing
 * is a note in r, not an error: the guest gets the result unframed.
 */
static void
finish(const struct wire_job *job, const uint8_t *mem, struct image *img,
    const uint8_t *as_png, size_t as_png_len, const char *name,
    struct job_out *out, struct wire_result *r)
{
	bool changed = false;
	char err[512];

	if (job->max_result_pixels > 0 && (uint64_t)img->width *
	    img->height > job->max_result_pixels) {
		image_fit(img, job->max_result_pixels);
		changed = true;
	}
	if (job->frame_len > 0) {
		if (finish_frame(img, frame_of(job, mem), job->frame_len,
		    job->max_pixels, r->frame_note, sizeof(r->frame_note)) ==
		    0) {
			r->framed = WIRE_FRAME_APPLIED;
			changed = true;
		} else {
			r->framed = WIRE_FRAME_FAILED;
		}
	}
	if (as_png != NULL && !changed) {
		out->png = xmalloc(as_png_len);
		memcpy(out->png, as_png, as_png_len);
		out->png_len = as_png_len;
	} else if (image_encode_png(img, &out->png, &out->png_len, err,
	    sizeof(err)) < 0) {
		job_error(r, WIRE_INTERNAL, name, "%s", err);
		return;
	}
	for (uint32_t i = 0; i < job->n_renditions; i++) {
		const struct wire_rendition *spec = &job->renditions[i];

		if (finish_rendition(img, spec, &out->rend[i],
		    &out->rend_len[i], err, sizeof(err)) < 0) {
			job_error(r, WIRE_INTERNAL, name, "rendition %s: %s",
			    spec->name, err);
			return;
		}
	}
}

void
job_out_free(struct job_out *out)
{
	free(out->png);
	for (size_t i = 0; i < WIRE_MAX_RENDITIONS; i++)
		free(out->rend[i]);
	memset(out, 0, sizeof(*out));
}

static int
status_of_decode(int rc)
{
	return rc == -E2BIG ? WIRE_TOO_LARGE : WIRE_BAD_INPUT;
}

/*
 * Decode the job's references (after the capture in mem), each at most a
 * megapixel: they feed colour statistics and the like, so eight of them
 * stay cheap.  One that does not decode is skipped with a warning.
 * Returns how many were decoded into img[] and described in refs[].
 */
static size_t
decode_references(const struct wire_job *job, const uint8_t *mem,
    struct image *img, struct firesync_image *refs)
{
	const uint8_t *p = mem + job->input_len;
	size_t n = 0;

	for (uint32_t i = 0; i < job->n_refs; i++) {
		char err[256];

		if (image_decode(p, job->ref_len[i], job->max_pixels, &img[n],
		    err, sizeof(err)) == 0 &&
		    image_fit(&img[n], REF_MAX_PIXELS) == 0) {
			refs[n].width = img[n].width;
			refs[n].height = img[n].height;
			refs[n].channels = img[n].channels;
			refs[n].stride = img[n].width * img[n].channels;
			refs[n].pixels = img[n].pixels;
			n++;
		} else {
			log_warn("session=%s event=%s reference image %u "
			    "skipped: %s", job->session_id, job->event_id, i,
			    err);
		}
		p += job->ref_len[i];
	}
	return n;
}

/* The plugin's request for the upright, cropped photo img. */
static void
make_request(struct firesync_request *req, const struct wire_job *job,
    const uint8_t *mem, const struct image *img,
    const struct firesync_image *refs, size_t n_refs)
{
	memset(req, 0, sizeof(*req));
	req->struct_size = sizeof(*req);
	req->image.width = img->width;
	req->image.height = img->height;
	req->image.channels = img->channels;
	req->image.stride = img->width * img->channels;
	req->image.pixels = img->pixels;
	req->original = mem;
	req->original_len = job->input_len;
	req->original_encoding = image_sniff(mem, job->input_len) ==
	    IMAGE_PNG ? FIRESYNC_ENCODING_PNG : FIRESYNC_ENCODING_JPEG;
	req->model = job->model;
	req->prompt = job->prompt;
	req->aspect_ratio = job->aspect_ratio;
	req->references = n_refs ? refs : NULL;
	req->n_references = n_refs;
	req->session_id = job->session_id;
	req->event_id = job->event_id;
	req->timeout_ms = job->timeout_ms;
}

/* Run lp on img and turn what it returned into the PNG (or r's error). */
static void
run_plugin(struct loaded_plugin *lp, uint64_t max_output,
    const struct wire_job *job, const uint8_t *mem, struct image *img,
    struct job_out *out, struct wire_result *r)
{
	struct firesync_image refs[WIRE_MAX_REFS];
	struct image ref_img[WIRE_MAX_REFS];
	struct firesync_request req;
	struct firesync_result res;
	const char *name = lp->desc->name;
	size_t n_refs = decode_references(job, mem, ref_img, refs);
	char err[512];
	int rc;

	make_request(&req, job, mem, img, refs, n_refs);
	memset(&res, 0, sizeof(res));
	res.struct_size = sizeof(res);
	err[0] = '\0';
	plugin_host_begin(name, job->timeout_ms);
	rc = lp->desc->transform(lp->state, &req, &res, err, sizeof(err));
	plugin_host_end();
	err[sizeof(err) - 1] = '\0';
	if (rc == FIRESYNC_OK) {
		struct image done;
		const uint8_t *as_png;

		if (take_result(max_output, name, job->aspect_ratio,
		    img->width, img->height, &res, job->max_pixels, &done,
		    &as_png, r) == 0) {
			finish(job, mem, &done, as_png, res.data_len, name, out,
			    r);
			image_free(&done);
		}
	} else if (rc == FIRESYNC_CANCELLED)
		job_error(r, WIRE_CANCELLED, name, "plugin %s gave up at the "
		    "deadline", name);
	else
		job_error(r, WIRE_PLUGIN_ERROR, name, "%s",
		    *err ? err : "the model failed without saying why");
	if (lp->remote) {
		/* what the service said, for the host's provider-wide view */
		r->service = res.service <= FIRESYNC_SERVICE_REJECTED ?
		    res.service : FIRESYNC_SERVICE_NONE;
		r->retry_after_ms = res.retry_after_ms > 0 &&
		    res.retry_after_ms <= 3600000 ? res.retry_after_ms : 0;
		r->input_tokens = res.input_tokens;
		r->output_tokens = res.output_tokens;
	}
	free(res.pixels);
	free(res.data);
	for (size_t i = 0; i < n_refs; i++)
		image_free(&ref_img[i]);
	if (r->status == WIRE_OK)
		snprintf(r->plugin, sizeof(r->plugin), "%s", name);
}

void
job_run(struct plugin_set *plugins, uint64_t max_output,
    const struct wire_job *job, const uint8_t *mem, struct job_out *out,
    struct wire_result *r)
{
	struct loaded_plugin *lp;
	struct image img;
	char err[512];
	int rc;

	r->status = WIRE_OK;
	memset(out, 0, sizeof(*out));
	rc = image_decode(mem, job->input_len, job->max_pixels, &img, err,
	    sizeof(err));
	if (rc < 0) {
		job_error(r, status_of_decode(rc), NULL, "%s", err);
		return;
	}
	if (!(job->flags & WIRE_JOB_AI)) {
		finish(job, mem, &img, NULL, 0, NULL, out, r);
	} else if ((lp = plugins_find(plugins, job->model)) == NULL) {
		char name[WIRE_NAME_LEN];

		job_error(r, WIRE_NO_PLUGIN, NULL, "no plugin for model '%s'",
		    text_name(job->model, 60, name, sizeof(name)));
	} else if (image_crop_aspect(&img, job->aspect_ratio, err,
	    sizeof(err)) < 0) {
		job_error(r, WIRE_BAD_INPUT, lp->desc->name, "%s", err);
	} else {
		run_plugin(lp, max_output, job, mem, &img, out, r);
	}
	image_free(&img);
	if (r->status != WIRE_OK)
		job_out_free(out);
}

uint8_t *
job_accept(struct wire_job *job, int fd, size_t *len)
{
	struct stat sb;
	uint64_t need;
	void *mem;

	job->model[sizeof(job->model) - 1] = '\0';
	job->aspect_ratio[sizeof(job->aspect_ratio) - 1] = '\0';
	job->session_id[sizeof(job->session_id) - 1] = '\0';
	job->event_id[sizeof(job->event_id) - 1] = '\0';
	job->prompt[sizeof(job->prompt) - 1] = '\0';
	if (fd < 0 || job->n_refs > WIRE_MAX_REFS || job->input_len == 0 ||
	    job->n_renditions > WIRE_MAX_RENDITIONS ||
	    fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0)
		return NULL;
	for (uint32_t i = 0; i < job->n_renditions; i++)
		if (!finish_rendition_ok(&job->renditions[i]))
			return NULL;
	/* every part inside the buffer, without wrapping around */
	need = job->input_len;
	if (need > (uint64_t)sb.st_size)
		return NULL;
	for (uint32_t i = 0; i < job->n_refs; i++) {
		if (job->ref_len[i] > (uint64_t)sb.st_size - need)
			return NULL;
		need += job->ref_len[i];
	}
	if (job->frame_len > (uint64_t)sb.st_size - need)
		return NULL;
	need += job->frame_len;
	mem = mmap(NULL, need, PROT_READ, MAP_PRIVATE, fd, 0);
	if (mem == MAP_FAILED)
		return NULL;
	*len = need;
	return mem;
}
