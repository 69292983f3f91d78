/*
 * Password policies over HTTP: sys/policies/password (LIST), sys/policies/password/:name
 * (read, write, delete), sys/policies/password/:name/generate, and the hook through which
 * backends generate passwords from a named policy (cs_req_generate_password). The
 * language and the generator are lib/pwpolicy.h's.
 */
#ifndef CS_SERVER_PWPOLICY_SYS_H
#define CS_SERVER_PWPOLICY_SYS_H

#include "server/core.h"

/* Where a policy is stored, as Vault stores it: {"policy": "<HCL text>"} behind the
 * barrier under this prefix + its name. */
#define CS_PWPOLICY_KEY_PREFIX "sys/password_policy/"
/* Longest policy name (bytes): keys stay well under LMDB's key size. */
#define CS_PWPOLICY_MAX_NAME 256

/* Register the sys/ rows and the password-policy hook of `core`. Once, at start-up
 * (cmd/modules.c). */
void cs_pwpolicy_register(struct cs_core *core);

/* A password from the stored policy `name`, read through req->txn: *out malloc'd (the
 * caller wipes and frees it). CS_ENOTFOUND when there is no such policy; CS_EINTERNAL
 * with a message when the stored text no longer parses. Loop thread. */
int cs_pwpolicy_generate_named(struct cs_request *req, const char *name, char **out);

#endif
