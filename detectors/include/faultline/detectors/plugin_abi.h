/* faultline detector plugin ABI: the stable C interface between faultline and a detector built
 * as a shared library. A plugin exports exactly one symbol, `faultline_detector_plugin`, a
 * function returning a pointer to a static table. No C++ types and no exceptions cross this
 * boundary. faultline refuses a plugin whose `abi_major` differs from its own; a larger
 * `abi_minor` from a newer plugin is accepted (minor versions only append fields).
 *
 * Threading: faultline calls one instance from one thread at a time; different instances may be
 * called from different threads concurrently, so instances must not share mutable state.
 * Lifecycle: create → observe… (→ save_state / restore_state) → destroy. See docs/plugins.md. */
#ifndef FAULTLINE_DETECTORS_PLUGIN_ABI_H
#define FAULTLINE_DETECTORS_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FAULTLINE_DETECTOR_ABI_MAJOR 1
#define FAULTLINE_DETECTOR_ABI_MINOR 0

enum fl_direction { FL_DIRECTION_NONE = 0, FL_DIRECTION_UP = 1, FL_DIRECTION_DOWN = 2 };

/* A verdict, written by the plugin into memory owned by faultline. */
typedef struct fl_verdict {
	int32_t anomalous; /* 0 or 1 */
	int32_t direction; /* enum fl_direction */
	double score;      /* finite, in [0, 1] */
	int32_t has_band;  /* 0 or 1: expected/lower/upper are meaningful */
	int32_t reserved;
	double expected, lower, upper;
} fl_verdict;

/* One configuration parameter; both strings are owned by faultline and valid during create(). */
typedef struct fl_param {
	const char *name;
	const char *value;
} fl_param;

typedef struct fl_detector_plugin {
	uint32_t abi_major;      /* required: FAULTLINE_DETECTOR_ABI_MAJOR */
	uint32_t abi_minor;      /* required: FAULTLINE_DETECTOR_ABI_MINOR the plugin was built with */
	const char *name;        /* required: the detector's name; static storage */
	const char *description; /* optional (NULL): one line with parameters and defaults */

	/* required: a new instance, or NULL with *error set to a message in static or thread-local
	 * storage owned by the plugin, naming the bad parameter and what was expected. */
	void *(*create)(const fl_param *params, size_t n_params, const char **error);
	/* required: frees an instance from create(). */
	void (*destroy)(void *instance);
	/* required: judges the next point (times do not decrease); returns 0, or non-zero when it
	 * could not judge (the verdict is then ignored and counted). */
	int (*observe)(void *instance, int64_t time_s, double value, fl_verdict *out);
	/* optional (NULL if stateless): writes the state into buf if it fits in cap bytes and returns
	 * its size either way (faultline calls again with a larger buffer if needed). */
	size_t (*save_state)(void *instance, uint8_t *buf, size_t cap);
	/* optional (NULL if stateless): 0 on success, else non-zero with *error set as in create(). */
	int (*restore_state)(void *instance, const uint8_t *buf, size_t len, const char **error);
} fl_detector_plugin;

/* The one symbol a plugin exports. The table must stay valid until the library is unloaded. */
typedef const fl_detector_plugin *(*fl_detector_plugin_entry)(void);
#define FAULTLINE_DETECTOR_PLUGIN_SYMBOL "faultline_detector_plugin"

#ifdef __cplusplus
}
#endif

#endif
