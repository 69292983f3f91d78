/*
 * `custos operator rotate` and `custos operator key-status`, with the Vault CLI's flags,
 * output and exit codes (OpenBao's command/operator_rotate.go, operator_key_status.go and
 * printKeyStatus are the reference):
 *
 *   $ custos operator rotate
 *   Success! Rotated key
 *
 *   Key Term            2
 *   Install Time        07 Dec 26 17:45 UTC
 *   Encryption Count    0
 *
 * -format=json prints the key status object {term, install_time, encryptions}. Exit codes:
 * 1 for flag/argument errors, 2 for errors from or while reaching the server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli_internal.h"
#include "cli/families.h"
#include "cli/format.h"

static const char usage_rotate[] =
    "Usage: custos operator rotate [options]\n\n"
    "  Rotates the underlying encryption key which is used to secure data written\n"
    "  to the storage backend. This installs a new key in the keyring. This new\n"
    "  key is used to encrypt new data, while older keys in the ring are used to\n"
    "  decrypt older data.\n\n"
    "  This is an online operation and does not cause downtime. This command is run\n"
    "  per-cluster (not per-server), since servers in a cluster share the same\n"
    "  storage. It needs sudo on sys/rotate.\n\n"
    "      $ custos operator rotate\n";

static const char usage_key_status[] =
    "Usage: custos operator key-status [options]\n\n"
    "  Provides information about the active barrier encryption key: the current\n"
    "  key term, its installation time and how many values it has encrypted.\n";

/* -h/-help anywhere among the leading flags: our text first; cs_cli_begin then adds the
 * shared HTTP options and exits 0. */
static void maybe_usage(int argc, char **argv, int start, const char *text)
{
	for (int i = start; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0' || strcmp(a, "--") == 0)
			return;
		const char *n = a + 1 + (a[1] == '-');
		size_t len = strcspn(n, "=");
		if ((len == 1 && n[0] == 'h') || (len == 4 && strncmp(n, "help", 4) == 0)) {
			fputs(text, stdout);
			return;
		}
	}
}

/* "2026-12-07T17:45:03.123Z" → Go's RFC822 in UTC ("07 Dec 26 17:45 UTC"); the server
 * always answers in UTC. Falls back to the text as given. */
static void rfc822(const char *s, char *out, size_t outlen)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	int y, mo, d, h, mi;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d", &y, &mo, &d, &h, &mi) == 5 && mo >= 1 && mo <= 12)
		snprintf(out, outlen, "%02d %s %02d %02d:%02d UTC", d, mon[mo - 1], y % 100, h, mi);
	else
		snprintf(out, outlen, "%s", s);
}

/* GET sys/key-status and print it (after `header`, if any). Exit code. */
static int print_key_status(struct cli *c, const char *header)
{
	struct cs_client_resp r;
	int code = 2;
	if (cs_client_request(&c->client, "GET", "sys/key-status", NULL, NULL, &r) != 0 ||
	    !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error reading key status");
		goto out;
	}
	const cJSON *d = cs_cli_get(r.json, "data");
	if (!cJSON_IsObject(d))
		d = r.json;
	const cJSON *term = cs_cli_get(d, "term"), *when = cs_cli_get(d, "install_time"),
		    *enc = cs_cli_get(d, "encryptions");
	if (!cJSON_IsNumber(term) || !cJSON_IsString(when) || !cJSON_IsNumber(enc)) {
		fprintf(stderr, "Error reading key status: unexpected answer\n");
		goto out;
	}
	if (cs_cli_is_json(c)) {
		/* api.KeyStatus in its field order. */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "term", cJSON_Duplicate(term, false));
		cJSON_AddItemToObject(o, "install_time", cJSON_Duplicate(when, false));
		cJSON_AddItemToObject(o, "encryptions", cJSON_Duplicate(enc, false));
		cs_cli_print_json(o, false);
		cJSON_Delete(o);
		code = 0;
		goto out;
	}
	char t[64];
	rfc822(when->valuestring, t, sizeof t);
	struct cs_fmt_lines l = {0};
	struct cs_buf n1 = CS_BUF_INIT, n2 = CS_BUF_INIT;
	cs_fmt_number(&n1, term->valuedouble);
	cs_fmt_number(&n2, enc->valuedouble);
	cs_fmt_lines_add(&l, "Key Term | %s", n1.data);
	cs_fmt_lines_add(&l, "Install Time | %s", t);
	cs_fmt_lines_add(&l, "Encryption Count | %s", n2.data);
	cs_buf_free(&n1);
	cs_buf_free(&n2);
	struct cs_buf out = CS_BUF_INIT;
	cs_fmt_columns(&out, &l, "|");
	cs_fmt_lines_free(&l);
	if (header)
		printf("%s\n\n", header);
	cs_cli_emit(stdout, &out);
	code = 0;
out:
	cs_client_resp_free(&r);
	return code;
}

int cs_cli_operator_rotate(struct cli *c, int argc, char **argv, int start)
{
	int code;
	maybe_usage(argc, argv, start, usage_rotate);
	if (cs_cli_start(c, C_OROTATE, argc, argv, start, 0, 0, "0", &code) < 0)
		return code;
	struct cs_client_resp r;
	if (cs_client_request(&c->client, "PUT", "sys/rotate", NULL, NULL, &r) != 0 ||
	    !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error rotating key");
		cs_client_resp_free(&r);
		return 2;
	}
	cs_client_resp_free(&r);
	return print_key_status(c, "Success! Rotated key");
}

int cs_cli_operator_key_status(struct cli *c, int argc, char **argv, int start)
{
	int code;
	maybe_usage(argc, argv, start, usage_key_status);
	if (cs_cli_start(c, C_OKEYSTATUS, argc, argv, start, 0, 0, "0", &code) < 0)
		return code;
	return print_key_status(c, NULL);
}
