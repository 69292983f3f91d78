/*
 * A tiny synchronous HTTP(S) client for the CLI: one libcurl easy handle, Vault's
 * request headers (X-Vault-Token, X-Vault-Request, X-Vault-Namespace), JSON bodies in
 * and out. Single-threaded; nothing here logs, and response bodies are wiped when freed
 * because they may carry unseal keys, tokens or secret values.
 *
 * Happy path: cs_client_init → cs_client_request (any number of times) →
 * cs_client_resp_free after each → cs_client_close.
 * Failure modes: a transport failure (DNS, connect, TLS, timeout) makes
 * cs_client_request return CS_EIO with resp->status 0 and resp->err set; any HTTP answer,
 * including 4xx/5xx, returns 0 with resp->status set and the caller decides.
 */
#ifndef CS_CLI_CLIENT_H
#define CS_CLI_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "lib/buf.h"

struct cs_client {
	/* Settings, all borrowed (the caller keeps them alive until cs_client_close). */
	const char *addr;      /* "https://127.0.0.1:8200"; a trailing '/' is ignored */
	const char *token;     /* NULL or "" sends no X-Vault-Token */
	const char *namespace; /* NULL or "" sends no X-Vault-Namespace */
	const char *ca_cert;   /* PEM bundle file, or NULL for the system store */
	const char *ca_path;   /* directory of hashed CA certificates, or NULL */
	bool skip_verify;      /* disables peer and host name verification */
	long timeout_s;        /* whole-request timeout; <= 0 means 60 s */
	/* Private. */
	void *curl;
};

struct cs_client_resp {
	long status;        /* HTTP status; 0 when no response arrived */
	struct cs_buf body; /* raw response body (wiped by cs_client_resp_free) */
	cJSON *json;        /* body parsed as JSON, or NULL (empty or not JSON) */
	char method[16];    /* request method as sent, for messages */
	char *url;          /* full request URL (malloc'd), for messages */
	char err[256];      /* transport error text when status == 0 */
};

/* Prepare c (settings already filled in). Returns 0 or CS_ENOMEM. */
int cs_client_init(struct cs_client *c);
void cs_client_close(struct cs_client *c);

/*
 * Send METHOD /v1/PATH[?query]. `path` has no leading "/v1/" and is percent-encoded here;
 * `query` (may be NULL) is appended as given. `body` (may be NULL) is serialised as JSON;
 * the serialised copy is wiped after sending. "LIST" is sent as a custom verb. The
 * response is stored in *resp (zeroed first), which the caller frees with
 * cs_client_resp_free whatever the return value. Returns 0 when an HTTP response arrived
 * (any status), CS_EIO on transport failure.
 */
int cs_client_request(struct cs_client *c, const char *method, const char *path, const char *query,
		      const cJSON *body, struct cs_client_resp *resp);

/*
 * A request whose body and/or answer are too large to hold in memory (raft snapshots).
 * Both descriptors stay the caller's; the client only reads/writes (and, to replay the
 * body after a redirect, seeks) them.
 */
struct cs_client_stream {
	int in_fd;       /* request body is read from here, or -1 for none */
	uint64_t in_len; /* its length in bytes (sent as Content-Length) */
	int out_fd;      /* a 2xx answer's body is written here, or -1 to keep it in memory */
	/* Called after each chunk written to out_fd with the bytes so far and the announced
	 * total (0 if unknown); may be NULL. Runs on the caller's thread. */
	void (*progress)(void *ud, uint64_t done, uint64_t total);
	void *ud;
	uint64_t out_bytes; /* set: bytes written to out_fd */
};

/*
 * Like cs_client_request, with the body streamed from s->in_fd (Content-Type
 * application/octet-stream) and a 2xx answer streamed to s->out_fd. Error answers
 * (non-2xx) land in resp->body/json as usual. No overall timeout unless the user set
 * one; a transfer stalled for 5 minutes fails. Returns 0 when an HTTP answer arrived
 * (any status), CS_EIO on transport failure or a failed write to out_fd (resp->err).
 */
int cs_client_request_stream(struct cs_client *c, const char *method, const char *path,
			     struct cs_client_stream *s, struct cs_client_resp *resp);

/* True for 2xx/3xx answers (what Vault's Go client treats as success). */
bool cs_client_resp_ok(const struct cs_client_resp *resp);

/*
 * Append the Vault Go client's error text for a failed request to out:
 * "Error making API request.\n\nURL: PUT https://...\nCode: 400. Errors:\n\n* msg" for an
 * HTTP error, or `Put "https://...": <transport error>` when no response arrived.
 */
void cs_client_format_error(const struct cs_client_resp *resp, struct cs_buf *out);

/* Wipe and free a response (safe on a zeroed or already-freed struct). */
void cs_client_resp_free(struct cs_client_resp *resp);

/* Zero every string inside a cJSON tree, then free it (NULL is fine). */
void cs_client_json_free_secure(cJSON *j);

#endif
