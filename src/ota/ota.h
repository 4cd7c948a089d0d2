/* ota.h — OTA packages beside the store: image files, checksums, which package serves a device,
 * and the shared attributes an assignment gives devices (ThingsBoard's OtaPackageStateService).
 *
 * The package rows live in the store (store_ota_t); the images live as files under
 * <data-dir>/ota/<package uuid>, never in the database: a 10 MB image in a row would be copied
 * into every backup, into the SQLite WAL or PostgreSQL's, and read whole per request
 * (docs/operations.md has the measurement). A file appears under its final name only after
 * it was written completely and fsync'd (temp file, fsync, rename, directory fsync), so a
 * crash leaves either no image or the whole one; temp files and images without a row are
 * removed at start (ota_files_sweep). Readers pread the block they serve.
 *
 * Threads: an ota_files_t is read-only after ota_files_open and may be used from any thread;
 * an ota_upload_t belongs to the one thread that writes it.
 */
#ifndef COAPHUB_OTA_OTA_H
#define COAPHUB_OTA_OTA_H

#include "core/err.h"
#include "device/hub.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ota_cfg {
    /* Largest image accepted by POST /api/otaPackage/{id}, in bytes. Default 64 MiB: more
     * than any microcontroller image and well under what one disk write should hold up;
     * larger uploads are answered 413 without being stored. */
    size_t max_size;
} ota_cfg_t;

void ota_cfg_default(ota_cfg_t *cfg);

typedef enum { OTA_FIRMWARE = 0, OTA_SOFTWARE = 1 } ota_type_t;

/* "FIRMWARE" / "SOFTWARE"; the key prefix "fw" / "sw"; the store's only_without word
 * "firmware" / "software". */
const char *ota_type_name(ota_type_t t);
const char *ota_type_prefix(ota_type_t t);
/* 0 and *out for "FIRMWARE"/"SOFTWARE" (exact, as Java's valueOf), else -EINVAL. */
int ota_type_parse(const char *s, ota_type_t *out);

/* ---- checksum.c: streaming checksums ---- */

/* Longest hex checksum plus NUL (SHA512). */
#define OTA_CHECKSUM_HEX_MAX 129

typedef struct ota_checksum ota_checksum_t;
/* Starts a checksum by ThingsBoard's ChecksumAlgorithm name, case-insensitive: MD5, SHA256,
 * SHA384, SHA512. CRC32, MURMUR3_32 and MURMUR3_128 are ThingsBoard names we cannot compute
 * with OpenSSL: -ENOTSUP. Anything else: -EINVAL. *canon gets the upper-case name. */
int ota_checksum_new(const char *algorithm, ota_checksum_t **out, const char **canon);
void ota_checksum_update(ota_checksum_t *c, const void *p, size_t n);
/* Lower-case hex of the digest into hex; frees c. */
void ota_checksum_final(ota_checksum_t *c, char hex[static OTA_CHECKSUM_HEX_MAX]);
/* Frees c without a result; NULL does nothing. */
void ota_checksum_free(ota_checksum_t *c);

/* ---- files.c: the image files ---- */

typedef struct ota_files ota_files_t;

/* Opens (creating, mode 0700) <data_dir>/ota. NULL with err filled on failure. */
ota_files_t *ota_files_open(const char *data_dir, const ota_cfg_t *cfg, char err[static ERR_LEN]);
void ota_files_free(ota_files_t *f);
const ota_cfg_t *ota_files_cfg(const ota_files_t *f);
/* Removes images whose package row is gone (a crash between a delete's row and its file, or
 * a device profile deleted with its packages) and, with uploads_too, the temp files of
 * uploads (left by a crash: only at start, before anything uploads). *n_removed counts them.
 * 0 or a store error (then the rest is kept). Without uploads_too it is safe while the server
 * runs, e.g. after a profile delete. */
int ota_files_sweep(const ota_files_t *f, store_t *s, bool uploads_too, size_t *n_removed);
/* Opens the image of package uuid read-only: an fd (caller closes) or -ENOENT / -errno. */
int ota_files_open_image(const ota_files_t *f, const char *uuid);
/* Removes the image of package uuid; missing is fine. 0 or -errno. */
int ota_files_remove(const ota_files_t *f, const char *uuid);

typedef struct ota_upload ota_upload_t;
/* Starts writing the image of package uuid into a temp file, checksumming with algorithm
 * (see ota_checksum_new: -ENOTSUP, -EINVAL) as it goes. */
int ota_upload_begin(const ota_files_t *f, const char *uuid, const char *algorithm,
                     ota_upload_t **out);
/* Appends n bytes. -EFBIG beyond cfg.max_size (the upload is then useless), -errno on a
 * write error. */
int ota_upload_write(ota_upload_t *u, const void *p, size_t n);
/* Bytes written so far. */
int64_t ota_upload_size(const ota_upload_t *u);
/* Ends the data: fsyncs the temp file and gives the checksum (lower-case hex) and the
 * canonical algorithm name. 0 or -errno. */
int ota_upload_finish(ota_upload_t *u, char hex[static OTA_CHECKSUM_HEX_MAX],
                      const char **algorithm);
/* Renames the finished temp file to the image's name and fsyncs the directory. 0 or -errno. */
int ota_upload_commit(ota_upload_t *u);
/* Frees u; an upload not committed leaves no file behind. NULL does nothing. */
void ota_upload_free(ota_upload_t *u);

/* ---- resolve.c: which package serves a device ---- */

/* The package of type assigned to device_id: its own (device.firmware_id/software_id), else
 * its profile's. 0 and fills out (store_ota_fini it); -ENOENT when none is assigned (or the
 * assigned row vanished); another store error. */
int ota_resolve(store_t *s, int64_t device_id, ota_type_t type, store_ota_t *out);

/* ThingsBoard's download rules, for every transport (CoAP fw, HTTP firmware):
 * ota_names_match: a title or version the device names (NULL: not named; the text need not
 * end in NUL, its length is given) must equal the package's;
 * ota_chunk_range: the bytes asked for — the whole image when size is 0, else the application
 * chunk [chunk*size, chunk*size+size) clipped to the image — into *start and *len; false (and
 * *len 0) when the chunk starts at or past the end, which each transport answers its way. */
bool ota_names_match(const store_ota_t *o, const char *title, size_t title_len, const char *version,
                     size_t version_len);
bool ota_chunk_range(int64_t data_size, int64_t size, int64_t chunk, uint64_t *start,
                     uint64_t *len);
/* The same from a device row already read: the uuid of the effective package into out
 * ("" when none). 0 or a store error. */
int ota_effective_id(store_t *s, const store_device_t *d, ota_type_t type,
                     char out[static STORE_UUID_LEN + 1]);

/* ---- assign.c: what an assignment tells devices ---- */

/* The effective package of type of device_id is now package_uuid (NULL or "": none). With a
 * package: telemetry target_<p>_title/_version/_ts and <p>_state "QUEUED", and the shared
 * attributes <p>_title, <p>_version, <p>_tag, <p>_size, <p>_checksum_algorithm,
 * <p>_checksum (or <p>_url for a package stored as a URL), committed in one batch and pushed
 * to the device's attribute observers through the hub; with none: those shared attributes
 * are deleted and observers told. 0 or a store error. Any thread that may block. */
int ota_device_apply(store_t *s, hub_t *h, int64_t device_id, ota_type_t type,
                     const char *package_uuid);

/* A device was saved: old_fw/old_sw are its effective package ids before the save ("" or
 * NULL: none; from ota_effective_id), the new ones are read now; each that changed is
 * applied as ThingsBoard does (a new device with a package gets it, a device that lost its
 * package has the attributes removed). 0 or the first store error. */
int ota_device_assignment_changed(store_t *s, hub_t *h, int64_t device_id, const char *old_fw,
                                  const char *old_sw);

/* A profile's firmware (and/or software) package was changed: every device of the profile
 * without a package of its own of that type gets the profile's new package, or loses the
 * attributes when the profile has none now. 0 or the first store error. For the profile
 * save handler (POST /api/deviceProfile), after the profile row is stored. */
int ota_profile_assignment_changed(store_t *s, hub_t *h, int64_t profile_id, bool firmware,
                                   bool software);

#endif
