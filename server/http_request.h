/*
 * Decoding of one HTTP request into what the core judges: the operation of the method,
 * the request fields of the query string and the body, and the client token of the
 * headers. The core (cs_core_handle_http, cs_core_admit) calls these in its order of
 * checks and never reads the method, query, body or token headers itself.
 *
 * Security properties kept here: a JSON body is parsed strictly (a repeated key at any
 * depth is refused), a repeated form or query name is refused, so the ACL, the field
 * checks and the handler all see one value per name; buffers that held field values are
 * wiped. Header sizes are bounded by the parser (http.c) before any of this runs.
 *
 * Pure functions of their arguments, callable from any thread.
 */
#ifndef CS_SERVER_HTTP_REQUEST_H
#define CS_SERVER_HTTP_REQUEST_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "server/backend.h"
#include "server/http.h"

/* GET/HEAD → read (is_head for HEAD), PUT/POST → update, DELETE, LIST, PATCH; anything
 * else is CS_EUNSUPPORTED. */
int cs_http_decode_method(const char *method, enum cs_op *op, bool *is_head);

/* What the query string says about the request itself rather than its fields. */
struct cs_http_flags {
	bool list; /* ?list=<true>: a GET that lists */
	bool help; /* ?help=<any non-empty value>, as Vault */
	/* The body was left unparsed: its Content-Type is not JSON, a form or text, and it
	 * does not start like JSON (binary requests such as OCSP; CS_PATH_RAW_BODY). */
	bool raw_body;
};

/*
 * The request fields for operation `op`: the query string (turned into string fields for
 * read, list and delete, as Vault does; "list" and "help" set *flags), then the
 * body — a JSON object that replaces *data, or a form body (string fields). PATCH needs
 * Content-Type application/merge-patch+json. *data is an object owned by the caller
 * before and after (it may be replaced). On a refusal returns the CS_E* code and sets
 * *errmsg (freed first; the caller owns the new one) to Vault's message.
 */
/* A body that is neither JSON nor a form is not parsed: flags->raw_body (the core
 * refuses it unless the route takes raw bodies). */
int cs_http_decode_fields(const struct cs_http_req *h, enum cs_op op, cJSON **data,
			  struct cs_http_flags *flags, char **errmsg);

/* The client token: X-Vault-Token, else "Authorization: Bearer <token>"; a new string
 * owned by the caller, or NULL. */
char *cs_http_client_token(const struct cs_http_req *h);

#endif
