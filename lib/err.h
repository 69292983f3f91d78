/*
 * One table of error codes for the whole server. Each code carries the HTTP status a
 * client sees when the code escapes a request, and a short default message. Functions
 * across custos return 0 (CS_OK) or one of these codes; detail goes to an errmsg buffer
 * owned by the object that failed, never a secret.
 */
#ifndef CS_LIB_ERR_H
#define CS_LIB_ERR_H

/*    name              http  default text */
#define CS_ERRORS(X)                                                                               \
	X(CS_OK, 200, "ok")                                                                        \
	X(CS_EINVAL, 400, "invalid request")                                                       \
	X(CS_ENOTFOUND, 404, "not found")                                                          \
	X(CS_EPERM, 403, "permission denied")                                                      \
	X(CS_EUNSUPPORTED, 405, "unsupported operation")                                           \
	X(CS_ETOOBIG, 413, "http: request body too large")                                         \
	X(CS_EMEDIATYPE, 415, "unsupported media type")                                            \
	X(CS_ESEALED, 503, "Vault is sealed")                                                      \
	X(CS_EUNINIT, 400, "Vault is not initialized")                                             \
	X(CS_EEXIST, 400, "already exists")                                                        \
	X(CS_ENOMEM, 500, "out of memory")                                                         \
	X(CS_EIO, 500, "storage error")                                                            \
	X(CS_ECRYPTO, 500, "cipher: message authentication failed")                                \
	X(CS_ENOTACTIVE, 503, "node is not active")                                                \
	X(CS_ELEADERSHIP, 500, "leadership lost while committing the request")                     \
	X(CS_ESHUTDOWN, 503, "server is shutting down")                                            \
	X(CS_EBUSY, 503, "busy, try again")                                                        \
	X(CS_EINTERNAL, 500, "internal error")

enum cs_err {
#define CS__ERR_ENUM(name, status, text) name,
	CS_ERRORS(CS__ERR_ENUM)
#undef CS__ERR_ENUM
	    CS_E__COUNT
};

/* Default message for a code; never NULL. */
const char *cs_strerror(int code);
/* HTTP status for a code (500 for unknown codes). */
int cs_err_status(int code);
/* Symbolic name ("CS_EINVAL"), for logs and tests. */
const char *cs_errname(int code);

#endif
