/*
 * demo.c - firesync-demo: one guest, end to end, on the emulator.
 *
 * Starts the Firestore emulator and firesyncd, then does what the web app
 * does: stores the guest's photo under captures/, writes the session and
 * sets it "captured", for an experience using the bundled cartoon model.
 * The event has a frame (branding/evt_demo/frame.png, drawn here) and the
 * daemon makes three renditions of each result.  Waits for firesyncd to
 * finish it and prints the session document's outcome and where the
 * result and its renditions are.
 *
 *   firesync-demo [--photo FILE] [FIRESYNCD]
 *
 * FILE is the guest's photo (a JPEG or PNG portrait); without it, a
 * synthetic test card.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "emulator.h"
#include "engine.h"
#include "image.h"
#include "log.h"
#include "testimg.h"
#include "watch.h"

#define EMULATOR_PATH "/usr/lib/google-cloud-sdk/platform/" \
	"cloud-firestore-emulator/cloud_firestore_emulator"

/* The renditions the demo's daemon makes of each result. */
#define RENDITIONS "thumb:480:jpeg, share:2048:jpeg, print:1200x1800:jpeg@300dpi"

/*
 * An example event frame, w x h: a deep blue border with a thin gold
 * line inside it, a wider band along the bottom for a couple's names or a
 * sponsor, and a transparent centre, softened at its edge.
 */
static void
write_frame(const char *path, uint32_t w, uint32_t h)
{
	static const uint8_t blue[3] = { 22, 38, 84 }, gold[3] = { 212, 175,
	    55 };
	struct image img = { w, h, 4, calloc((size_t)w * h, 4) };
	uint32_t b = w / 16, bottom = h / 7;
	uint8_t *png;
	size_t len;
	char err[128];

	if (img.pixels == NULL)
		fatal("out of memory");
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = img.pixels + ((size_t)y * w + x) * 4;
			/* the distance to the nearest edge; the band along
			 * the bottom is thicker */
			long in = (long)(x < w - 1 - x ? x : w - 1 - x);
			long low = (long)(h - 1 - y) - (long)(bottom - b);

			in = in < (long)y ? in : (long)y;
			in = in < low ? in : low;
			if (in < (long)b) {
				memcpy(p, blue, 3);
				p[3] = 255;
			} else if (in < (long)b + 3) {
				memcpy(p, gold, 3);
				p[3] = 255;
			} else if (in < (long)b + 11) {
				/* a shadow fading into the photo */
				p[3] = (uint8_t)(110 - (in - (long)b - 3) * 13);
			}
		}
	if (image_encode_png(&img, &png, &len, err, sizeof(err)) < 0)
		fatal("cannot draw the frame: %s", err);
	testimg_write(path, png, len);
	free(png);
	image_free(&img);
}

int
main(int argc, char **argv)
{
	const char *empath = getenv("FIRESTORE_EMULATOR") ?
	    getenv("FIRESTORE_EMULATOR") : EMULATOR_PATH;
	const char *photo = NULL, *daemon = NULL;
	struct emulator em = { 0 };
	struct fs_client *c;
	char root[64], logpath[128], path[256], exe[600], plugdir[128];
	char cmd[2400], here[512];
	FsDocument *doc = NULL;
	uint8_t *jpg;
	size_t len;
	int64_t end;
	pid_t d;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--photo") == 0 && i + 1 < argc)
			photo = argv[++i];
		else
			daemon = argv[i];
	}
	log_init();
	{
		/* the build tree: tools/../daemon/firesyncd, tools/../plugins */
		ssize_t n = readlink("/proc/self/exe", here, sizeof(here) - 64);

		if (n <= 0)
			fatal("cannot find where firesync-demo runs from");
		here[n] = '\0';
		*strrchr(here, '/') = '\0';
		*strrchr(here, '/') = '\0';
	}
	if (daemon == NULL) {
		snprintf(exe, sizeof(exe), "%s/daemon/firesyncd", here);
		daemon = exe;
	}
	printf("starting the Firestore emulator...\n");
	if (emulator_start(&em, empath, 0) < 0)
		fatal("cannot start the Firestore emulator at %s", empath);
	grpc_init();
	snprintf(root, sizeof(root), "/tmp/firesync-demo-XXXXXX");
	if (mkdtemp(root) == NULL)
		fatal("mkdtemp: %s", strerror(errno));
	snprintf(logpath, sizeof(logpath), "%s/firesyncd.log", root);
	/* the bundled models, as an installed plugin directory would hold */
	snprintf(plugdir, sizeof(plugdir), "%s/plugins", root);
	snprintf(cmd, sizeof(cmd), "mkdir -m 755 %s && cp %s/plugins/cartoon/"
	    ".libs/cartoon.so %s/plugins/style/.libs/style.so %s/ && "
	    "chmod 755 %s/*.so", plugdir, here, here, plugdir, plugdir);
	if (system(cmd) != 0)
		fatal("cannot set up the plugin directory %s", plugdir);
	c = admin_client(em.host, "demo");
	{
		const char *args[] = { "--emulator", em.host, "--project",
		    "demo", "--storage-root", root, "--plugin-dir", plugdir,
		    "--renditions", RENDITIONS, NULL };

		snprintf(path, sizeof(path), "%s/branding/evt_demo/frame.png",
		    root);
		write_frame(path, 1200, 1200);
		printf("the event's frame: %s\n", path);
		d = daemon_spawn(daemon, args, logpath);
	}
	printf("firesyncd running (log: %s)\n", logpath);

	/* the web app's side */
	{
		FsValue *f = value_map(), *cfg = value_map();

		value_map_put(cfg, "enabled", value_bool(true));
		value_map_put(cfg, "model", value_string("cartoon"));
		value_map_put(cfg, "prompt", value_string("bold"));
		value_map_put(cfg, "aspectRatio", value_string("1:1"));
		value_map_put(f, "name", value_string("Cartoon booth"));
		value_map_put(f, "aiPhotoConfig", cfg);
		if (admin_set(c, "experiences/exp_booth", f) != 0)
			fatal("cannot write the experience");
	}
	if (photo != NULL) {
		FILE *f = fopen(photo, "rb");

		if (f == NULL)
			fatal("%s: %s", photo, strerror(errno));
		jpg = malloc(64 << 20);
		len = jpg ? fread(jpg, 1, 64 << 20, f) : 0;
		fclose(f);
		if (len == 0)
			fatal("%s: cannot read it", photo);
	} else {
		testimg_jpeg(1280, 960, 6, &jpg, &len);
	}
	snprintf(path, sizeof(path),
	    "%s/captures/evt_demo/sess_demo/input.jpg", root);
	testimg_write(path, jpg, len);
	free(jpg);
	printf("guest photo stored: %s%s%s%s\n", path, photo ? " (from " :
	    "", photo ? photo : "", photo ? ")" : "");
	if (admin_set(c, "events/evt_demo/sessions/sess_demo",
	    session_fields("evt_demo", "sess_demo", "exp_booth",
	    "captures/evt_demo/sess_demo/input.jpg", now_wall_ms())) != 0)
		fatal("cannot write the session");
	printf("session events/evt_demo/sessions/sess_demo is 'captured'\n");

	end = test_now_ms() + 30000;
	while (test_now_ms() < end) {
		const char *st;

		doc_free(doc);
		doc = admin_get(c, "events/evt_demo/sessions/sess_demo");
		st = doc ? doc_string(doc, "state") : NULL;
		if (st && strcmp(st, "ready") == 0) {
			const char *url = doc_string(doc, "resultImagePath");

			const char *file = strncmp(url, "file://", 7) == 0 ?
			    url + 7 : url;
			int dirlen = (int)(strrchr(file, '/') - file);

			printf("session is 'ready' (model cartoon, 1:1, "
			    "framed)\nresultImagePath: %s\nresult file:     "
			    "%s\nrenditions:      %.*s/thumb.jpg (480 px)\n"
			    "                 %.*s/share.jpg (2048 px at most)\n"
			    "                 %.*s/print.jpg (1200x1800, 300 "
			    "dpi: 4x6 in)\n", url, file, dirlen, file, dirlen,
			    file, dirlen, file);
			rc = 0;
			break;
		}
		if (st && strcmp(st, "error") == 0) {
			printf("session ended in error: %s\n",
			    doc_string(doc, "error"));
			break;
		}
		usleep(20000);
	}
	if (rc != 0 && doc == NULL)
		printf("the session did not finish in 30 s; see %s\n", logpath);
	doc_free(doc);
	daemon_stop(d, 10000);
	fs_client_free(c);
	grpc_shutdown();
	emulator_stop(&em);
	return rc;
}
