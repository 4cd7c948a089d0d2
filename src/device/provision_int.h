/* provision_int.h — what provision.c and provision_chain.c share (module-internal). */
#ifndef COAPHUB_DEVICE_PROVISION_INT_H
#define COAPHUB_DEVICE_PROVISION_INT_H

#include "device/provision.h"

/* Creates device `name` in profile_id with one credential (one transaction), saves its server
 * attribute provisionState = "provisioned" (a failure there is logged, not returned) and
 * records the credential in the registry. 0 and *device_id; ERR_CONFLICT when the name is
 * taken, -EEXIST when the credential belongs to another device, another store error. */
int provision__create(store_t *s, registry_t *reg, hub_t *hub, const char *name, int64_t profile_id,
                      store_cred_type_t type, const char *cred_id, const char *cred_value,
                      int64_t *device_id);
/* Saves the server attribute provisionState = "provisioned" (waits for the commit). */
int provision__set_provisioned(store_t *s, int64_t device_id);

#endif
