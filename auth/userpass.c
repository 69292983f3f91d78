/*
 * The userpass auth method (see userpass.h).
 *
 * Happy path of a login: login() reads the user in the request's first transaction,
 * copies its password hash into a job and defers it → pool thread runs the KDF and
 * compares → login_resume() (new transaction) re-reads the user, checks the hash it
 * verified against is still the stored one, checks token_bound_cidrs, and issues the
 * token through auth/tokenutil.h.
 * Failure modes: unknown user → the same KDF against a dummy hash, then 400 "invalid
 * username or password" (as for a wrong password); password changed or user deleted
 * while the KDF ran → 400 likewise; client outside token_bound_cidrs → 403; node sealed,
 * demoted or shutting down before the resume → the core fails the request (the job is
 * freed by the resume with a status).
 * Writes that set a password follow the same shape: validate, defer the hashing, then
 * re-read and write in the resume (a user deleted meanwhile is created again by a
 * create/update of users/:name, and is an error for users/:name/password).
 */
#include "auth/userpass.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/tokenutil.h"
#include "lib/err.h"
#include "lib/util.h"

#define HASH_PREFIX "pbkdf2-sha256$"
#define INVALID     "invalid username or password"

/* ---------------------------------------------------------------- hashing */

static bool kdf(const char *password, const uint8_t *salt, size_t salt_len, unsigned iter,
		uint8_t out[CS_USERPASS_KEY_LEN])
{
	return PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iter,
				 EVP_sha256(), CS_USERPASS_KEY_LEN, out) == 1;
}

static char *encode(unsigned iter, const uint8_t *salt, size_t salt_len, const uint8_t *key)
{
	char *s64 = cs_b64_encode(salt, salt_len);
	char *k64 = cs_b64_encode(key, CS_USERPASS_KEY_LEN);
	size_t n = strlen(HASH_PREFIX) + 12 + strlen(s64) + strlen(k64) + 3;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, HASH_PREFIX "%u$%s$%s", iter, s64, k64);
	free(s64);
	cs_zero(k64, strlen(k64));
	free(k64);
	return out;
}

char *cs_userpass_hash(const char *password, unsigned iter)
{
	uint8_t salt[CS_USERPASS_SALT_LEN], key[CS_USERPASS_KEY_LEN];
	if (!password || iter == 0)
		return NULL;
	cs_random(salt, sizeof salt);
	if (!kdf(password, salt, sizeof salt, iter, key))
		return NULL;
	char *out = encode(iter, salt, sizeof salt, key);
	cs_zero(key, sizeof key);
	return out;
}

/* Split "pbkdf2-sha256$iter$salt$key"; salt and key are malloc'd. */
static bool decode(const char *enc, unsigned *iter, uint8_t **salt, size_t *salt_len, uint8_t **key,
		   size_t *key_len)
{
	*salt = *key = NULL;
	if (!enc || strncmp(enc, HASH_PREFIX, strlen(HASH_PREFIX)) != 0)
		return false;
	const char *p = enc + strlen(HASH_PREFIX);
	char *end = NULL;
	unsigned long it = strtoul(p, &end, 10);
	if (end == p || *end != '$' || it == 0 || it > 100000000UL)
		return false;
	const char *s = end + 1, *d = strchr(s, '$');
	if (!d)
		return false;
	*salt = cs_b64_decode(s, (size_t)(d - s), salt_len);
	*key = cs_b64_decode(d + 1, strlen(d + 1), key_len);
	if (!*salt || !*key || *key_len != CS_USERPASS_KEY_LEN || *salt_len == 0) {
		free(*salt);
		free(*key);
		*salt = *key = NULL;
		return false;
	}
	*iter = (unsigned)it;
	return true;
}

bool cs_userpass_verify(const char *password, const char *encoded)
{
	unsigned iter;
	uint8_t *salt, *want, got[CS_USERPASS_KEY_LEN];
	size_t salt_len, want_len;
	if (!password || !decode(encoded, &iter, &salt, &salt_len, &want, &want_len))
		return false;
	bool ok = kdf(password, salt, salt_len, iter, got) &&
		  CRYPTO_memcmp(got, want, CS_USERPASS_KEY_LEN) == 0;
	cs_zero(got, sizeof got);
	cs_zero(want, want_len);
	free(salt);
	free(want);
	return ok;
}

/* A well-formed hash nobody's password matches: logins of unknown users verify against
 * it so that they cost the same time as a wrong password. */
static char dummy_hash[128];

static const char *dummy(void)
{
	if (!dummy_hash[0]) {
		uint8_t salt[CS_USERPASS_SALT_LEN], key[CS_USERPASS_KEY_LEN];
		cs_random(salt, sizeof salt);
		cs_random(key, sizeof key);
		char *e = encode(CS_USERPASS_KDF_ITER, salt, sizeof salt, key);
		snprintf(dummy_hash, sizeof dummy_hash, "%s", e ? e : "");
		free(e);
	}
	return dummy_hash;
}

/* ---------------------------------------------------------------- jobs */

enum job_kind { JOB_LOGIN, JOB_SET_USER, JOB_SET_PASSWORD };

struct job {
	struct cs_async async;
	enum job_kind kind;
	char *password; /* secret; zeroised */
	char *hash;     /* login: the hash verified against; set: the new hash */
	bool ok;        /* login: password matched */
};

static void job_free(struct job *j)
{
	if (j->password) {
		cs_zero(j->password, strlen(j->password));
		free(j->password);
	}
	free(j->hash);
	free(j);
}

/* Pool thread: touches only the job. */
static void job_work(struct cs_async *a)
{
	struct job *j = CS_CONTAINER_OF(a, struct job, async);
	if (j->kind == JOB_LOGIN) {
		j->ok = cs_userpass_verify(j->password, j->hash);
	} else {
		free(j->hash);
		j->hash = cs_userpass_hash(j->password, CS_USERPASS_KDF_ITER);
	}
	cs_zero(j->password, strlen(j->password));
}

static int defer(struct cs_request *req, enum job_kind kind, const char *password, const char *hash,
		 cs_async_resume_fn resume)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		return CS_ENOMEM;
	j->kind = kind;
	j->password = strdup(password);
	j->hash = hash ? strdup(hash) : NULL;
	if (!j->password || (hash && !j->hash)) {
		job_free(j);
		return CS_ENOMEM;
	}
	j->async.work = job_work;
	j->async.resume = resume;
	/* The job holds the only copy the request still needs: wipe the one in the body. */
	cJSON *body_pw = cJSON_GetObjectItemCaseSensitive(req->data, "password");
	if (cJSON_IsString(body_pw))
		cs_zero(body_pw->valuestring, strlen(body_pw->valuestring));
	return cs_req_defer(req, &j->async);
}

/* ---------------------------------------------------------------- storage */

/* Lower-cased user name from the path capture, or NULL if empty/too long. */
static bool username(const struct cs_request *req, char *out, size_t outlen)
{
	const char *u = cs_req_capture(req, "username");
	if (!u || !*u || strlen(u) >= outlen)
		return false;
	size_t i = 0;
	for (; u[i]; i++)
		out[i] = (u[i] >= 'A' && u[i] <= 'Z') ? (char)(u[i] - 'A' + 'a') : u[i];
	out[i] = '\0';
	return true;
}

static int user_get(struct cs_request *req, const char *name, cJSON **out)
{
	char key[400];
	snprintf(key, sizeof key, "users/%s", name);
	return cs_tokenutil_get_opt(req, key, out);
}

static int user_put(struct cs_request *req, const char *name, const cJSON *entry)
{
	char key[400];
	snprintf(key, sizeof key, "users/%s", name);
	return cs_view_put_json(req, key, entry);
}

static void set_hash(cJSON *entry, const char *hash)
{
	cs_tokenutil_set(entry, "password_hash", cJSON_CreateString(hash));
}

/* The user name of the path and the "password" of the body (borrowed; the tables of
 * login and users/{username}/password mark it required, so it is not empty). The route
 * always captures a non-empty name: "missing username" refuses an over-long one. */
static int name_and_password(struct cs_request *req, char name[256], const char **pw)
{
	*pw = "";
	if (!username(req, name, 256))
		return cs_req_error(req, CS_EINVAL, "missing username");
	*pw = cs_req_str(req, "password", "");
	return 0;
}

/* The user named by the path (name lower-cased), or *e NULL when there is none. */
static int user_find(struct cs_request *req, char name[256], cJSON **e)
{
	*e = NULL;
	if (!username(req, name, 256))
		return cs_req_error(req, CS_EINVAL, "missing username");
	return user_get(req, name, e);
}

/* user_find for a user that must exist. */
static int user_must(struct cs_request *req, char name[256], cJSON **e)
{
	int rc = user_find(req, name, e);
	if (!rc && !*e)
		rc = cs_req_error(req, CS_EINVAL, "username does not exist");
	return rc;
}

/* ---------------------------------------------------------------- users */

static int user_exists(struct cs_request *req, bool *exists)
{
	char name[256];
	*exists = false;
	if (!username(req, name, sizeof name))
		return 0;
	cJSON *e = NULL;
	int rc = user_get(req, name, &e);
	*exists = e != NULL;
	cJSON_Delete(e);
	return rc;
}

static int user_read(struct cs_request *req)
{
	char name[256];
	cJSON *e;
	int rc = user_find(req, name, &e);
	if (rc)
		return rc;
	if (!e)
		return CS_ENOTFOUND;
	cJSON *d = cJSON_CreateObject();
	cs_tokenutil_read(e, d);
	cJSON_Delete(e);
	cs_req_set_data(req, d);
	return 0;
}

/* Apply the request's fields to the stored user (or a new one) and write it. `hash`
 * replaces the password when not NULL. */
static int user_store(struct cs_request *req, const char *hash)
{
	char name[256];
	cJSON *e;
	int rc = user_find(req, name, &e);
	if (rc)
		return rc;
	bool is_new = e == NULL;
	if (is_new)
		e = cJSON_CreateObject();
	rc = cs_tokenutil_update(req, e, is_new);
	/* A user may be created by an update too (it vanished meanwhile): no password yet. */
	if (!rc && is_new && !hash)
		rc = cs_req_error(req, CS_EINVAL, "missing password");
	if (!rc && hash)
		set_hash(e, hash);
	if (!rc)
		rc = user_put(req, name, e);
	cJSON_Delete(e);
	return rc;
}

static int user_write_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct job *j = CS_CONTAINER_OF(a, struct job, async);
	int rc = status;
	if (!rc && !j->hash)
		rc = cs_req_error(req, CS_EINTERNAL, "failed to hash the password");
	if (!rc)
		rc = user_store(req, j->hash);
	job_free(j);
	return rc;
}

static int user_write(struct cs_request *req)
{
	char name[256];
	if (!username(req, name, sizeof name))
		return cs_req_error(req, CS_EINVAL, "missing username");
	const char *pw = cs_req_str(req, "password", NULL);
	/* By hand, not in the table: a password is needed to create a user, not to update
	 * one (the same row serves both). */
	if (!pw || !*pw) {
		if (req->op == CS_OP_CREATE)
			return cs_req_error(req, CS_EINVAL, "missing password");
		return user_store(req, NULL);
	}
	/* Validate the other fields now, on a scratch copy, so that a bad request costs no
	 * KDF; the resume applies them again to whatever is stored by then. */
	cJSON *scratch = cJSON_CreateObject();
	int rc = cs_tokenutil_update(req, scratch, true);
	cJSON_Delete(scratch);
	if (rc)
		return rc;
	return defer(req, JOB_SET_USER, pw, NULL, user_write_resume);
}

static int user_delete(struct cs_request *req)
{
	char name[256], key[400];
	if (!username(req, name, sizeof name))
		return cs_req_error(req, CS_EINVAL, "missing username");
	snprintf(key, sizeof key, "users/%s", name);
	return cs_view_delete(req, key);
}

static int user_list(struct cs_request *req)
{
	struct cs_strv keys = {0};
	return cs_tokenutil_reply_keys(req, cs_view_list_page(req, "users/", &keys), &keys);
}

static int password_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct job *j = CS_CONTAINER_OF(a, struct job, async);
	int rc = status;
	char name[256];
	cJSON *e = NULL;
	if (!rc && !j->hash)
		rc = cs_req_error(req, CS_EINTERNAL, "failed to hash the password");
	if (!rc)
		rc = user_must(req, name, &e);
	if (!rc) {
		set_hash(e, j->hash);
		rc = user_put(req, name, e);
	}
	cJSON_Delete(e);
	job_free(j);
	return rc;
}

static int user_password(struct cs_request *req)
{
	char name[256];
	const char *pw;
	int rc = name_and_password(req, name, &pw);
	if (rc)
		return rc;
	cJSON *e;
	rc = user_must(req, name, &e);
	cJSON_Delete(e);
	if (rc)
		return rc;
	return defer(req, JOB_SET_PASSWORD, pw, NULL, password_resume);
}

static int user_policies(struct cs_request *req)
{
	char name[256];
	cJSON *e;
	int rc = user_must(req, name, &e);
	if (!rc)
		rc = cs_tokenutil_update(req, e, false);
	if (!rc)
		rc = user_put(req, name, e);
	cJSON_Delete(e);
	return rc;
}

/* ---------------------------------------------------------------- login */

static int login_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct job *j = CS_CONTAINER_OF(a, struct job, async);
	bool ok = j->ok;
	char *verified = j->hash;
	j->hash = NULL;
	job_free(j);
	int rc = status;
	char name[256];
	cJSON *e = NULL;
	if (!rc && !username(req, name, sizeof name))
		rc = cs_req_error(req, CS_EINVAL, INVALID);
	if (!rc)
		rc = user_get(req, name, &e);
	if (!rc) {
		/* The hash that matched must still be the user's: not deleted, not changed. */
		const char *cur = e ? cs_tokenutil_str(e, "password_hash") : "";
		bool same = e && verified && strlen(cur) == strlen(verified) &&
			    CRYPTO_memcmp(cur, verified, strlen(cur)) == 0;
		if (!ok || !same)
			rc = cs_req_error(req, CS_EINVAL, INVALID);
	}
	free(verified);
	if (!rc &&
	    !cs_tokenutil_cidr_list_ok(cJSON_GetObjectItemCaseSensitive(e, "token_bound_cidrs"),
				       cs_tokenutil_remote(req)))
		rc = cs_req_error(req, CS_EPERM, "permission denied");
	if (!rc) {
		char path[600];
		snprintf(path, sizeof path, "%slogin/%s", cs_req_mount_path(req), name);
		cJSON *meta = cJSON_CreateObject();
		cJSON_AddStringToObject(meta, "username", name);
		/* Vault: the alias is the username, without metadata. */
		rc = cs_tokenutil_issue_alias(req, e, meta, name, path, name, NULL);
		cJSON_Delete(meta);
	}
	cJSON_Delete(e);
	return rc;
}

static int login(struct cs_request *req)
{
	char name[256];
	const char *pw;
	int rc = name_and_password(req, name, &pw);
	if (rc)
		return rc;
	cJSON *e = NULL;
	rc = user_get(req, name, &e);
	if (rc)
		return rc;
	const char *hash = e ? cs_tokenutil_str(e, "password_hash") : "";
	rc = defer(req, JOB_LOGIN, pw, *hash ? hash : dummy(), login_resume);
	cJSON_Delete(e);
	return rc;
}

/* ---------------------------------------------------------------- table */

static const struct cs_field user_fields[] = {
    {.name = "username", .type = CS_FIELD_STRING, .desc = "user name"},
    {.name = "password", .type = CS_FIELD_STRING, .desc = "password"},
    CS_TOKENUTIL_FIELDS,
    {.name = NULL},
};

static const struct cs_field password_fields[] = {
    {.name = "username", .type = CS_FIELD_STRING, .desc = "user name"},
    {.name = "password", .type = CS_FIELD_STRING, .desc = "new password", .required = true},
    {.name = NULL},
};

static const struct cs_field policies_fields[] = {
    {.name = "username", .type = CS_FIELD_STRING, .desc = "user name"},
    {.name = "token_policies", .type = CS_FIELD_STRLIST, .desc = "policies of issued tokens"},
    {.name = "policies", .type = CS_FIELD_STRLIST, .desc = "deprecated: token_policies"},
    {.name = NULL},
};

static const struct cs_field login_fields[] = {
    {.name = "username", .type = CS_FIELD_STRING, .desc = "user name"},
    {.name = "password", .type = CS_FIELD_STRING, .desc = "password", .required = true},
    {.name = NULL},
};

static const struct cs_path userpass_paths[] = {
    {.pattern = "users", .ops = {[CS_OP_LIST] = user_list}, .synopsis = "list users"},
    {.pattern = "users/{username}/password",
     .fields = password_fields,
     .ops = {[CS_OP_UPDATE] = user_password},
     .synopsis = "change a user's password"},
    {.pattern = "users/{username}/policies",
     .fields = policies_fields,
     .ops = {[CS_OP_UPDATE] = user_policies},
     .synopsis = "change a user's policies"},
    {.pattern = "users/{username}",
     .fields = user_fields,
     .ops = {[CS_OP_READ] = user_read,
	     [CS_OP_CREATE] = user_write,
	     [CS_OP_UPDATE] = user_write,
	     [CS_OP_DELETE] = user_delete},
     .exists = user_exists,
     .synopsis = "manage users"},
    {.pattern = "login/{username}",
     .fields = login_fields,
     .ops = {[CS_OP_UPDATE] = login},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "log in with a user name and password"},
};

const struct cs_backend cs_userpass_backend = {
    .type = "userpass",
    .is_auth = true,
    .paths = userpass_paths,
    .n_paths = CS_ARRAY_LEN(userpass_paths),
};

void cs_userpass_register(void)
{
	cs_backend_register(&cs_userpass_backend);
}
