/*
 * Vault's JSON bodies: the response envelope and error lists
 * (https://developer.hashicorp.com/vault/api-docs).
 * Both return malloc'd, NUL-terminated JSON and its length.
 */
#ifndef CS_SERVER_RESPONSE_H
#define CS_SERVER_RESPONSE_H

#include <stddef.h>

#include "server/backend.h"

/* {"request_id":..,"lease_id":..,"renewable":..,"lease_duration":..,"data":..,
 *  "wrap_info":null,"warnings":..,"auth":..,"mount_type":..} (+ data keys at the top
 *  level when req->data_to_top). */
char *cs_response_envelope(const struct cs_request *req, size_t *len);
/* {"errors":[msg]} or {"errors":[]} when msg is NULL. */
char *cs_response_errors(const char *msg, size_t *len);

#endif
