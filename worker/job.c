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

/* Check what a plugin returned, crop it to the aspect ratio and turn it
 * into PNG bytes. */
static int
take_result(uint64_t max_output, const char *name, const char *ratio,
    uint32_t pw, uint32_t ph, struct firesync_result *res,
    uint64_t max_pixels, uint8_t **png, size_t *pnglen,
    struct wire_result *r)
{
	char err[512];

	if (res->pixels != NULL) {
		uint64_t row = (uint64_t)res->width * res->channels;
		struct image img;
		int rc;

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
		img.width = res->width;
		img.height = res->height;
		img.channels = res->channels;
		if (res->stride == row && *ratio == '\0' && fabs(log(
		    (double)res->width / res->height * ph / pw)) <= 0.01) {
			img.pixels = res->pixels;
		} else {
			/* a copy of our own, which cropping may replace */
			img.pixels = xmalloc((size_t)row * res->height);
			for (uint32_t y = 0; y < res->height; y++)
				memcpy(img.pixels + (size_t)y * row,
				    res->pixels + (size_t)y * res->stride, row);
			if (crop_result(name, ratio, pw, ph, &img, r) < 0) {
				free(img.pixels);
				return -1;
			}
		}
		rc = image_encode_png(&img, png, pnglen, err, sizeof(err));
		if (img.pixels != res->pixels)
			free(img.pixels);
		if (rc < 0) {
			job_error(r, WIRE_INTERNAL, name, "%s", err);
			return -1;
		}
		return 0;
	}
	if (res->data != NULL && res->data_len > 0 &&
	    res->data_len <= max_output &&
	    res->data_len <= malloc_usable_size(res->data) &&
	    (res->encoding == FIRESYNC_ENCODING_PNG ||
	     res->encoding == FIRESYNC_ENCODING_JPEG)) {
		struct image img;
		uint32_t w, h;

		/* decode to be sure it is what it says, within limits */
		if (image_decode(res->data, res->data_len, max_pixels, &img,
		    err, sizeof(err)) < 0) {
			job_error(r, WIRE_BAD_RESULT, name, "plugin %s "
			    "returned an image that does not decode", name);
			return -1;
		}
		w = img.width;
		h = img.height;
		if (crop_result(name, ratio, pw, ph, &img, r) < 0) {
			image_free(&img);
			return -1;
		}
		if (image_sniff(res->data, res->data_len) == IMAGE_PNG &&
		    img.width == w && img.height == h) {
			*png = xmalloc(res->data_len);
			memcpy(*png, res->data, res->data_len);
			*pnglen = res->data_len;
			image_free(&img);
			return 0;
		}
		if (image_encode_png(&img, png, pnglen, err, sizeof(err)) < 0) {
			image_free(&img);
			job_error(r, WIRE_INTERNAL, name, "%s", err);
			return -1;
		}
		image_free(&img);
		return 0;
	}
	job_error(r, WIRE_BAD_RESULT, name, "plugin %s returned no "
	    "usable image", name);
	return -1;
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
    uint8_t **png, size_t *pnglen, struct wire_result *r)
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
	if (rc == FIRESYNC_OK)
		take_result(max_output, name, job->aspect_ratio, img->width,
		    img->height, &res, job->max_pixels, png, pnglen, r);
	else if (rc == FIRESYNC_CANCELLED)
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
    const struct wire_job *job, const uint8_t *mem, uint8_t **png,
    size_t *pnglen, struct wire_result *r)
{
	struct loaded_plugin *lp;
	struct image img;
	char err[512];
	int rc;

	r->status = WIRE_OK;
	rc = image_decode(mem, job->input_len, job->max_pixels, &img, err,
	    sizeof(err));
	if (rc < 0) {
		job_error(r, status_of_decode(rc), NULL, "%s", err);
		return;
	}
	if (!(job->flags & WIRE_JOB_AI)) {
		if (image_encode_png(&img, png, pnglen, err, sizeof(err)) < 0)
			job_error(r, WIRE_INTERNAL, NULL, "%s", err);
	} else if ((lp = plugins_find(plugins, job->model)) == NULL) {
		char name[WIRE_NAME_LEN];

		job_error(r, WIRE_NO_PLUGIN, NULL, "no plugin for model '%s'",
		    text_name(job->model, 60, name, sizeof(name)));
	} else if (image_crop_aspect(&img, job->aspect_ratio, err,
	    sizeof(err)) < 0) {
		job_error(r, WIRE_BAD_INPUT, lp->desc->name, "%s", err);
	} else {
		run_plugin(lp, max_output, job, mem, &img, png, pnglen, r);
	}
	image_free(&img);
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
	    fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0)
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
	mem = mmap(NULL, need, PROT_READ, MAP_PRIVATE, fd, 0);
	if (mem == MAP_FAILED)
		return NULL;
	*len = need;
	return mem;
}
