/*
 * GPGME wrapper (see pgp.h). One call = one temporary GnuPG home: import every key, find
 * each key's fingerprint in the import result, encrypt each input to its key with
 * ALWAYS_TRUST (the operator chose the key; there is no web of trust to consult), then
 * remove the home. Failure modes: a key that is not base64, "keybase:", or not an OpenPGP
 * public key → CS_EINVAL and a message naming its position; GnuPG missing or failing →
 * CS_EINTERNAL.
 */
#include "server/pgp.h"

#include <ftw.h>
#include <gpgme.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

struct session {
	char home[64];
	gpgme_ctx_t ctx;
	gpgme_key_t *keys; /* n, NULL-terminated per encryption */
	int n;
};

static void session_end(struct session *s)
{
	for (int i = 0; s->keys && i < s->n; i++)
		if (s->keys[i])
			gpgme_key_unref(s->keys[i]);
	free(s->keys);
	if (s->ctx)
		gpgme_release(s->ctx);
	if (s->home[0]) {
		char sock[128];
		snprintf(sock, sizeof sock, "%s/S.gpg-agent", s->home);
		if (access(sock, F_OK) == 0) {
			/* gpg started an agent for this home: stop it before removing it. */
			char cmd[160];
			snprintf(cmd, sizeof cmd,
				 "gpgconf --homedir '%s' --kill all >/dev/null 2>&1", s->home);
			if (system(cmd) != 0) {
				/* nothing more to do: the agent exits when its socket goes */
			}
		}
		nftw(s->home, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
}

void cs_pgp_init(void)
{
	gpgme_check_version(NULL);
}

/* Import keys[0..n) into a fresh home; s->keys[i] = the key of keys[i]. */
static int session_start(struct session *s, const char *const *keys, int n,
			 char (*fpr)[CS_PGP_FPR_LEN + 1], char *errmsg, size_t errlen)
{
	memset(s, 0, sizeof *s);
	for (int i = 0; i < n; i++) {
		if (strncmp(keys[i], "keybase:", 8) == 0) {
			snprintf(errmsg, errlen,
				 "PGP key %d: keybase: keys are not supported; give the base64 "
				 "of the binary public key (gpg --export KEY | base64)",
				 i + 1);
			return CS_EINVAL;
		}
	}
	snprintf(s->home, sizeof s->home, "/tmp/custos-gpg-XXXXXX");
	if (!mkdtemp(s->home)) {
		s->home[0] = '\0';
		snprintf(errmsg, errlen, "PGP: cannot create a temporary GnuPG home");
		return CS_EINTERNAL;
	}
	if (gpgme_new(&s->ctx) ||
	    gpgme_ctx_set_engine_info(s->ctx, GPGME_PROTOCOL_OpenPGP, NULL, s->home)) {
		snprintf(errmsg, errlen, "PGP: GnuPG is not available");
		return CS_EINTERNAL;
	}
	gpgme_set_armor(s->ctx, 0);
	s->keys = calloc((size_t)n, sizeof *s->keys);
	if (!s->keys)
		abort();
	s->n = n;
	for (int i = 0; i < n; i++) {
		size_t len = 0;
		uint8_t *bin = cs_b64_decode(keys[i], strlen(keys[i]), &len);
		if (!bin || !len) {
			free(bin);
			snprintf(errmsg, errlen, "error decoding given PGP key %d: not base64",
				 i + 1);
			return CS_EINVAL;
		}
		gpgme_data_t d = NULL;
		gpgme_error_t e = gpgme_data_new_from_mem(&d, (const char *)bin, len, 1);
		free(bin);
		if (!e)
			e = gpgme_op_import(s->ctx, d);
		gpgme_data_release(d);
		gpgme_import_result_t r = e ? NULL : gpgme_op_import_result(s->ctx);
		if (!r || !r->imports || !r->imports->fpr || r->imports->result ||
		    strlen(r->imports->fpr) != CS_PGP_FPR_LEN) {
			snprintf(errmsg, errlen,
				 "error parsing given PGP key %d: not an OpenPGP public key",
				 i + 1);
			return CS_EINVAL;
		}
		if (gpgme_get_key(s->ctx, r->imports->fpr, &s->keys[i], 0) || !s->keys[i] ||
		    !s->keys[i]->can_encrypt) {
			snprintf(errmsg, errlen, "PGP key %d has no usable encryption key", i + 1);
			return CS_EINVAL;
		}
		if (fpr) {
			for (int k = 0; k < CS_PGP_FPR_LEN; k++) {
				char c = r->imports->fpr[k];
				fpr[i][k] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
			}
			fpr[i][CS_PGP_FPR_LEN] = '\0';
		}
	}
	return 0;
}

int cs_pgp_fingerprints(const char *const *keys, int n, char (*fpr)[CS_PGP_FPR_LEN + 1],
			char *errmsg, size_t errlen)
{
	struct session s;
	int rc = session_start(&s, keys, n, fpr, errmsg, errlen);
	session_end(&s);
	return rc;
}

int cs_pgp_encrypt(const char *const *keys, const uint8_t *const *in, const size_t *in_len, int n,
		   struct cs_buf *out, char (*fpr)[CS_PGP_FPR_LEN + 1], char *errmsg, size_t errlen)
{
	struct session s;
	int rc = session_start(&s, keys, n, fpr, errmsg, errlen);
	int i = 0;
	for (; !rc && i < n; i++) {
		gpgme_data_t plain = NULL, cipher = NULL;
		gpgme_key_t recp[2] = {s.keys[i], NULL};
		gpgme_error_t e =
		    gpgme_data_new_from_mem(&plain, (const char *)in[i], in_len[i], 0);
		if (!e)
			e = gpgme_data_new(&cipher);
		if (!e)
			e = gpgme_op_encrypt(s.ctx, recp, GPGME_ENCRYPT_ALWAYS_TRUST, plain,
					     cipher);
		gpgme_data_release(plain);
		size_t len = 0;
		char *ct = cipher ? gpgme_data_release_and_get_mem(cipher, &len) : NULL;
		if (e || !ct || !len) {
			snprintf(errmsg, errlen, "error encrypting PGP message for key %d: %s",
				 i + 1, e ? gpgme_strerror(e) : "empty output");
			rc = CS_EINTERNAL;
		} else {
			out[i] = (struct cs_buf)CS_BUF_INIT;
			cs_buf_append(&out[i], ct, len);
		}
		gpgme_free(ct);
	}
	if (rc)
		for (int k = 0; k < i - 1; k++)
			cs_buf_free(&out[k]);
	session_end(&s);
	return rc;
}
