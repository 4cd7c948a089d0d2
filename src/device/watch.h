/* watch.h — turns committed store batches into live events for hub watchers (the web UI's
 * Server-Sent Events): telemetry points, attribute changes and activity, grouped per device.
 */
#ifndef COAPHUB_DEVICE_WATCH_H
#define COAPHUB_DEVICE_WATCH_H

#include "device/hub.h"
#include "store/store.h"

/* A store_commit_hook; ctx is the hub_t. Publishes nothing when nobody watches. */
void device_watch_commit_hook(void *ctx, const store_batch_t *b);

#endif
