/*
 * The cluster verbs of the CLI, with the Vault CLI's flags, output and exit codes
 * (OpenBao's command/operator_raft_*.go and operator_step_down.go are the reference):
 *
 *   custos operator raft join [-leader-ca-cert=@file|PEM] [-retry] [-non-voter] ADDR
 *   custos operator raft list-peers
 *   custos operator raft remove-peer SERVER_ID
 *   custos operator raft autopilot state | get-config | set-config [-flags]
 *   custos operator raft snapshot save FILE | restore [-force] FILE | inspect FILE
 *   custos operator step-down
 *
 * Exit codes as in Vault: 1 for flag/argument errors, 2 for errors from or while reaching
 * the server (and for local file errors around a snapshot transfer, as Vault does).
 *
 * Snapshots never pass through memory: `save` streams the answer into a temporary file
 * beside FILE and renames it into place only once the transfer succeeded (so an
 * interrupted save never leaves a truncated FILE behind), `restore` streams FILE as the
 * request body.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli_internal.h"
#include "cli/families.h"
#include "cli/format.h"
#include "lib/util.h"

#include "raft/snapshot.h"

/* ------------------------------------------------------------------ flags & usage */

static const struct flag raft_flags[] = {
    {"leader-ca-cert", F_STR, OFF(leader_ca_cert), C_RJOIN, 0},
    {"leader-client-cert", F_STR, OFF(leader_client_cert), C_RJOIN, 0},
    {"leader-client-key", F_STR, OFF(leader_client_key), C_RJOIN, 0},
    {"retry", F_BOOL, OFF(retry), C_RJOIN, 0},
    {"non-voter", F_BOOL, OFF(non_voter), C_RJOIN, 0},
    {"cleanup-dead-servers", F_BOOL, OFF(cleanup_dead_servers), C_RAPSET,
     OFF(cleanup_dead_servers_set)},
    {"last-contact-threshold", F_DUR, OFF(last_contact_threshold), C_RAPSET, 0},
    {"dead-server-last-contact-threshold", F_DUR, OFF(dead_server_last_contact_threshold), C_RAPSET,
     0},
    {"server-stabilization-time", F_DUR, OFF(server_stabilization_time), C_RAPSET, 0},
    {"max-trailing-logs", F_INT, OFF(max_trailing_logs), C_RAPSET, 0},
    {"min-quorum", F_INT, OFF(min_quorum), C_RAPSET, 0},
    {"force", F_BOOL, OFF(force), C_RSRESTORE, 0},
};

static const struct usage raft_usages[] = {
    {C_RJOIN, "Usage: custos operator raft join [options] LEADER_API_ADDR\n\n"
	      "  Joins this (uninitialised) node to the raft cluster of the node at\n"
	      "  LEADER_API_ADDR; then unseal it with the cluster's unseal keys.\n\n"
	      "      $ custos operator raft join https://10.0.0.1:8200\n\n"
	      "  Certificate flags take PEM text or @FILE.\n\n"
	      "  -leader-ca-cert=<string>      CA certificate to verify the leader's API TLS.\n"
	      "  -leader-client-cert=<string>  Client certificate for the leader's API.\n"
	      "  -leader-client-key=<string>   Its private key.\n"
	      "  -retry                        Keep retrying the join (every 2 s).\n"
	      "  -non-voter                    Join as a permanent non-voter.\n"},
    {C_RPEERS, "Usage: custos operator raft list-peers [options]\n\n"
	       "  Lists the members of the raft cluster: node id, cluster address, state\n"
	       "  (leader or follower) and whether it votes.\n"},
    {C_RREMOVE, "Usage: custos operator raft remove-peer [options] SERVER_ID\n\n"
		"  Removes the node SERVER_ID from the raft cluster.\n"},
    {C_RAPSTATE, "Usage: custos operator raft autopilot state [options]\n\n"
		 "  Shows the health of every server as autopilot sees it.\n"},
    {C_RAPGET, "Usage: custos operator raft autopilot get-config [options]\n\n"
	       "  Shows autopilot's configuration.\n"},
    {C_RAPSET, "Usage: custos operator raft autopilot set-config [options]\n\n"
	       "  Changes autopilot's configuration; unset flags keep their value.\n\n"
	       "  -cleanup-dead-servers                 Remove dead servers automatically.\n"
	       "  -last-contact-threshold=<dur>         Contact gap after which a server is\n"
	       "                                        unhealthy.\n"
	       "  -dead-server-last-contact-threshold=<dur>\n"
	       "                                        Contact gap after which it is dead.\n"
	       "  -max-trailing-logs=<int>              Entries a healthy server may lag.\n"
	       "  -min-quorum=<int>                     Voters never removed below this.\n"
	       "  -server-stabilization-time=<dur>      Healthy time before a new server votes.\n"},
    {C_RSSAVE, "Usage: custos operator raft snapshot save [options] FILE\n\n"
	       "  Saves a snapshot of the cluster's data into FILE (a gzip'd tar archive).\n"},
    {C_RSRESTORE, "Usage: custos operator raft snapshot restore [options] FILE\n\n"
		  "  Replaces the cluster's data with the snapshot in FILE.\n\n"
		  "  -force                 Skip the check that the snapshot was taken with\n"
		  "                         this cluster's unseal keys.\n"},
    {C_RSINSPECT, "Usage: custos operator raft snapshot inspect [options] FILE\n\n"
		  "  Verifies the snapshot FILE offline and prints its metadata.\n\n"
		  "  -format=<string>       table (default) or json.\n"},
    {C_STEPDOWN, "Usage: custos operator step-down [options]\n\n"
		 "  Makes the active node give up leadership; another voter takes over.\n"},
};
const struct cs_cli_family cs_cli_raft_family = CS_CLI_FAMILY(raft_flags, raft_usages);

static const char usage_raft[] = "Usage: custos operator raft <subcommand> [options] [args]\n"
				 "\n"
				 "Subcommands:\n"
				 "    autopilot      Autopilot state and configuration\n"
				 "    join           Joins a node to the raft cluster\n"
				 "    list-peers     Lists the raft peers\n"
				 "    remove-peer    Removes a node from the raft cluster\n"
				 "    snapshot       Saves, restores and inspects snapshots\n";

static const char usage_autopilot[] =
    "Usage: custos operator raft autopilot <subcommand> [options]\n"
    "\n"
    "Subcommands:\n"
    "    get-config    Shows autopilot's configuration\n"
    "    set-config    Changes autopilot's configuration\n"
    "    state         Shows the cluster's state as autopilot sees it\n";

static const char usage_snapshot[] =
    "Usage: custos operator raft snapshot <subcommand> [options] FILE\n"
    "\n"
    "Subcommands:\n"
    "    inspect    Verifies a snapshot file and prints its metadata (offline)\n"
    "    restore    Installs a snapshot, replacing the cluster's data\n"
    "    save       Saves a snapshot of the cluster's data\n";

/* ------------------------------------------------------------------ helpers */

/* Vault's "Incorrect arguments (expected N, got M)". True (after printing) if wrong. */
static bool wrong_count(int got, int want)
{
	if (got == want)
		return false;
	fprintf(stderr, "Incorrect arguments (expected %d, got %d)\n", want, got);
	return true;
}

/* Flags, exactly `nargs` positional arguments, client. Same convention as cs_cli_start. */
static int start_exact(struct cli *c, uint64_t cmd, int argc, char **argv, int start, int nargs,
		       int *code)
{
	int i = cs_cli_begin(c, cmd, argc, argv, start, code);
	if (i < 0)
		return -1;
	if (wrong_count(argc - i, nargs)) {
		*code = 1;
		return -1;
	}
	if (cs_cli_make_client(c)) {
		*code = 2;
		return -1;
	}
	return i;
}

/* The envelope's data object (Vault's responses), or the body itself for servers that
 * answer bare objects. Borrowed from r, NULL if neither is an object. */
static const cJSON *data_of(const struct cs_client_resp *r)
{
	const cJSON *d = cs_cli_get(r->json, "data");
	if (cJSON_IsObject(d))
		return d;
	return cJSON_IsObject(r->json) ? r->json : NULL;
}

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cs_cli_get(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static double num_of(const cJSON *o, const char *k)
{
	const cJSON *v = cs_cli_get(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void print_lines_table(struct cs_fmt_lines *l)
{
	struct cs_buf out = CS_BUF_INIT;
	cs_fmt_table(&out, l, "|");
	cs_cli_emit(stdout, &out);
	cs_fmt_lines_free(l);
}

/* Vault's parseFlagFile: "@path" is the file's contents, anything else is itself.
 * Returns a malloc'd string (NULL for an unset flag) or sets *failed after printing. */
static char *flag_file(const char *v, const char *what, bool *failed)
{
	if (!v || !*v)
		return NULL;
	if (v[0] != '@') {
		char *r = strdup(v);
		if (!r)
			abort();
		return r;
	}
	char *data = NULL;
	size_t len = 0;
	int rc = cs_read_file(v + 1, &data, &len);
	if (rc != 0) {
		fprintf(stderr, "Failed to parse %s: open %s: %s\n", what, v + 1, strerror(rc));
		*failed = true;
		return NULL;
	}
	return data;
}

static void free_secret_str(char *s)
{
	if (s) {
		cs_zero(s, strlen(s));
		free(s);
	}
}

/* ------------------------------------------------------------------ join */

static int raft_join(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_RJOIN, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (argc - i > 1) {
		fprintf(stderr, "Too many arguments (expected 0-1, got %d)\n", argc - i);
		return 1;
	}
	bool failed = false;
	char *ca = flag_file(c->leader_ca_cert, "leader CA certificate", &failed);
	char *cert =
	    failed ? NULL : flag_file(c->leader_client_cert, "leader client certificate", &failed);
	char *key = failed ? NULL : flag_file(c->leader_client_key, "leader client key", &failed);
	cJSON *body = NULL;
	if (failed) {
		code = 1;
		goto out;
	}
	if (cs_cli_make_client(c)) {
		code = 2;
		goto out;
	}
	body = cJSON_CreateObject();
	char *addr = cs_cli_trim_dup(i < argc ? argv[i] : "", i < argc ? strlen(argv[i]) : 0);
	cJSON_AddStringToObject(body, "leader_api_addr", addr);
	free(addr);
	if (ca)
		cJSON_AddStringToObject(body, "leader_ca_cert", ca);
	if (cert)
		cJSON_AddStringToObject(body, "leader_client_cert", cert);
	if (key)
		cJSON_AddStringToObject(body, "leader_client_key", key);
	cJSON_AddBoolToObject(body, "retry", c->retry);
	cJSON_AddBoolToObject(body, "non_voter", c->non_voter);

	struct cs_client_resp r;
	if (!cs_cli_call(c, "POST", "sys/storage/raft/join", NULL, body, &r,
			 "Error joining the node to the Raft cluster")) {
		code = 2;
	} else {
		bool joined = cJSON_IsTrue(cs_cli_get(data_of(&r), "joined"));
		code = 0;
		if (cs_cli_is_json(c)) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddBoolToObject(o, "joined", joined);
			cs_cli_print_json(o, false);
			cJSON_Delete(o);
		} else {
			struct cs_fmt_lines l = {NULL, 0, 0};
			cs_fmt_lines_add(&l, "Key | Value");
			cs_fmt_lines_add(&l, "Joined | %s", joined ? "true" : "false");
			print_lines_table(&l);
		}
	}
	cs_client_resp_free(&r);
out:
	cs_client_json_free_secure(body); /* it may carry the client key */
	free(ca);
	free(cert);
	free_secret_str(key);
	return code;
}

/* ------------------------------------------------------------------ peers */

static int raft_list_peers(struct cli *c, int argc, char **argv, int start)
{
	int code;
	if (start_exact(c, C_RPEERS, argc, argv, start, 0, &code) < 0)
		return code;
	struct cs_client_resp r;
	(void)cs_client_request(&c->client, "GET", "sys/storage/raft/configuration", NULL, NULL,
				&r);
	const cJSON *cfg = cs_cli_get(cs_cli_get(r.json, "data"), "config");
	if (r.status == 404 && !cfg) {
		/* Go's Logical().Read: a 404 without data is "no secret". */
		fprintf(stderr, "No raft cluster configuration found\n");
		code = 2;
	} else if (!cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error reading the raft cluster configuration");
		code = 2;
	} else if (cs_cli_is_json(c)) {
		code = cs_cli_output_secret(c, r.json);
	} else {
		struct cs_fmt_lines l = {NULL, 0, 0};
		cs_fmt_lines_add(&l, "Node | Address | State | Voter");
		const cJSON *servers = cs_cli_get(cfg, "servers");
		for (const cJSON *s = cJSON_IsArray(servers) ? servers->child : NULL; s;
		     s = s->next)
			cs_fmt_lines_add(
			    &l, "%s | %s | %s | %s", str_of(s, "node_id"), str_of(s, "address"),
			    cJSON_IsTrue(cs_cli_get(s, "leader")) ? "leader" : "follower",
			    cJSON_IsTrue(cs_cli_get(s, "voter")) ? "true" : "false");
		print_lines_table(&l);
		code = 0;
	}
	cs_client_resp_free(&r);
	return code;
}

static int raft_remove_peer(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = start_exact(c, C_RREMOVE, argc, argv, start, 1, &code);
	if (i < 0)
		return code;
	char *id = cs_cli_trim_dup(argv[i], strlen(argv[i]));
	if (!*id) {
		fprintf(stderr, "Server id is required\n");
		free(id);
		return 1;
	}
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "server_id", id);
	free(id);
	struct cs_client_resp r;
	if (cs_cli_call(c, "POST", "sys/storage/raft/remove-peer", NULL, body, &r,
			"Error removing the peer from raft cluster")) {
		printf("Peer removed successfully!\n");
		code = 0;
	} else {
		code = 2;
	}
	cs_client_resp_free(&r);
	cJSON_Delete(body);
	return code;
}

/* ------------------------------------------------------------------ autopilot */

/* One server of the state as Go's json.Marshal prints api.AutopilotServer (no json
 * tags: Go field names). */
static cJSON *go_autopilot_server(const cJSON *s)
{
	static const char *const strs[][2] = {{"ID", "id"},
					      {"Name", "name"},
					      {"Address", "address"},
					      {"NodeStatus", "node_status"},
					      {"LastContact", "last_contact"}};
	cJSON *o = cJSON_CreateObject();
	for (size_t k = 0; k < CS_ARRAY_LEN(strs); k++)
		cJSON_AddStringToObject(o, strs[k][0], str_of(s, strs[k][1]));
	cJSON_AddNumberToObject(o, "LastTerm", num_of(s, "last_term"));
	cJSON_AddNumberToObject(o, "LastIndex", num_of(s, "last_index"));
	cJSON_AddBoolToObject(o, "Healthy", cJSON_IsTrue(cs_cli_get(s, "healthy")));
	cJSON_AddStringToObject(o, "StableSince", str_of(s, "stable_since"));
	cJSON_AddStringToObject(o, "Status", str_of(s, "status"));
	cJSON_AddStringToObject(o, "Version", str_of(s, "version"));
	cJSON_AddStringToObject(o, "UpgradeVersion", str_of(s, "upgrade_version"));
	cJSON_AddStringToObject(o, "NodeType", str_of(s, "node_type"));
	return o;
}

static cJSON *dup_or_null(const cJSON *v)
{
	return cJSON_IsArray(v) ? cJSON_Duplicate(v, true) : cJSON_CreateNull();
}

/* `-format=json` of the state: Vault marshals its api.AutopilotState struct, which has
 * no json tags, so the keys are Go's field names. */
static cJSON *go_autopilot_state(const cJSON *d)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "Healthy", cJSON_IsTrue(cs_cli_get(d, "healthy")));
	cJSON_AddNumberToObject(o, "FailureTolerance", num_of(d, "failure_tolerance"));
	cJSON *servers = cJSON_AddObjectToObject(o, "Servers");
	const cJSON *ss = cs_cli_get(d, "servers");
	for (const cJSON *s = cJSON_IsObject(ss) ? ss->child : NULL; s; s = s->next)
		cJSON_AddItemToObject(servers, s->string, go_autopilot_server(s));
	cJSON_AddStringToObject(o, "Leader", str_of(d, "leader"));
	cJSON_AddItemToObject(o, "Voters", dup_or_null(cs_cli_get(d, "voters")));
	cJSON_AddItemToObject(o, "NonVoters", dup_or_null(cs_cli_get(d, "non_voters")));
	cJSON_AddItemToObject(o, "Upgrade", cJSON_CreateNull());
	cJSON_AddNumberToObject(o, "OptimisticFailureTolerance",
				num_of(d, "optimistic_failure_tolerance"));
	return o;
}

static void pretty_names(struct cs_buf *b, const cJSON *list)
{
	for (const cJSON *v = cJSON_IsArray(list) ? list->child : NULL; v; v = v->next)
		cs_buf_printf(b, "   %s\n", cJSON_IsString(v) ? v->valuestring : "");
}

static int cmp_item_key(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

static void pretty_server(struct cs_buf *b, const cJSON *s)
{
	cs_buf_printf(b, "   %s\n", s->string);
	cs_buf_printf(b, "      Name:              %s\n", str_of(s, "name"));
	cs_buf_printf(b, "      Address:           %s\n", str_of(s, "address"));
	cs_buf_printf(b, "      Status:            %s\n", str_of(s, "status"));
	cs_buf_printf(b, "      Node Status:       %s\n", str_of(s, "node_status"));
	cs_buf_printf(b, "      Healthy:           %s\n",
		      cJSON_IsTrue(cs_cli_get(s, "healthy")) ? "true" : "false");
	cs_buf_printf(b, "      Last Contact:      %s\n", str_of(s, "last_contact"));
	cs_buf_printf(b, "      Last Term:         %.0f\n", num_of(s, "last_term"));
	cs_buf_printf(b, "      Last Index:        %.0f\n", num_of(s, "last_index"));
	cs_buf_printf(b, "      Version:           %s\n", str_of(s, "version"));
	if (*str_of(s, "upgrade_version"))
		cs_buf_printf(b, "      Upgrade Version:   %s\n", str_of(s, "upgrade_version"));
	if (*str_of(s, "node_type"))
		cs_buf_printf(b, "      Node Type:         %s\n", str_of(s, "node_type"));
}

/* The default ("pretty") rendering of the state, as Vault prints it. */
static void pretty_autopilot_state(struct cs_buf *b, const cJSON *d)
{
	cs_buf_printf(b, "Healthy:                         %s\n",
		      cJSON_IsTrue(cs_cli_get(d, "healthy")) ? "true" : "false");
	cs_buf_printf(b, "Failure Tolerance:               %.0f\n", num_of(d, "failure_tolerance"));
	cs_buf_printf(b, "Leader:                          %s\n", str_of(d, "leader"));
	cs_buf_puts(b, "Voters:\n");
	pretty_names(b, cs_cli_get(d, "voters"));
	const cJSON *nv = cs_cli_get(d, "non_voters");
	if (cJSON_GetArraySize(nv) > 0) {
		cs_buf_puts(b, "Non Voters:\n");
		pretty_names(b, nv);
	}
	if (num_of(d, "optimistic_failure_tolerance") > 0)
		cs_buf_printf(b, "Optimistic Failure Tolerance:    %.0f\n",
			      num_of(d, "optimistic_failure_tolerance"));
	cs_buf_puts(b, "Servers:\n");
	const cJSON *ss = cs_cli_get(d, "servers");
	size_t n = 0;
	for (const cJSON *s = cJSON_IsObject(ss) ? ss->child : NULL; s; s = s->next)
		n++;
	const cJSON **v = calloc(n ? n : 1, sizeof *v);
	if (!v)
		abort();
	n = 0;
	for (const cJSON *s = cJSON_IsObject(ss) ? ss->child : NULL; s; s = s->next)
		v[n++] = s;
	qsort(v, n, sizeof *v, cmp_item_key);
	for (size_t k = 0; k < n; k++)
		pretty_server(b, v[k]);
	free(v);
}

static int autopilot_state(struct cli *c, int argc, char **argv, int start)
{
	int code;
	if (start_exact(c, C_RAPSTATE, argc, argv, start, 0, &code) < 0)
		return code;
	struct cs_client_resp r;
	(void)cs_client_request(&c->client, "GET", "sys/storage/raft/autopilot/state", NULL, NULL,
				&r);
	const cJSON *d = cs_cli_get(r.json, "data");
	if (r.status == 404) {
		code = 0; /* Vault: no autopilot (not raft storage), nothing to print */
	} else if (!cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error checking autopilot state");
		code = 2;
	} else if (!cJSON_IsObject(d)) {
		fprintf(stderr,
			"Error checking autopilot state: data from server response is empty\n");
		code = 2;
	} else if (cs_cli_is_json(c)) {
		cJSON *o = go_autopilot_state(d);
		cs_cli_print_json(o, false);
		cJSON_Delete(o);
		code = 0;
	} else {
		struct cs_buf b = CS_BUF_INIT;
		pretty_autopilot_state(&b, d);
		cs_cli_emit(stdout, &b); /* Vault's trailing blank line included */
		code = 0;
	}
	cs_client_resp_free(&r);
	return code;
}

/* A duration field of the configuration in seconds (the server may send "10s",
 * "24h0m0s" or a number of seconds). */
static int64_t dur_of(const cJSON *o, const char *k)
{
	const cJSON *v = cs_cli_get(o, k);
	int64_t secs = 0;
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	if (cJSON_IsString(v) && cs_parse_duration(v->valuestring, &secs) == 0)
		return secs;
	return 0;
}

static int autopilot_get_config(struct cli *c, int argc, char **argv, int start)
{
	int code;
	if (start_exact(c, C_RAPGET, argc, argv, start, 0, &code) < 0)
		return code;
	struct cs_client_resp r;
	(void)cs_client_request(&c->client, "GET", "sys/storage/raft/autopilot/configuration", NULL,
				NULL, &r);
	const cJSON *d = data_of(&r);
	static const char *const durs[][2] = {
	    {"last_contact_threshold", "Last Contact Threshold"},
	    {"dead_server_last_contact_threshold", "Dead Server Last Contact Threshold"},
	    {"server_stabilization_time", "Server Stabilization Time"}};
	char t[32];
	if (r.status == 404) {
		code = 0;
	} else if (!cs_client_resp_ok(&r) || !d) {
		cs_cli_api_error(&r, "Error reading the autopilot configuration");
		code = 2;
	} else if (cs_cli_is_json(c)) {
		/* api.AutopilotConfig's MarshalJSON: a map (keys sorted), Go durations. */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "cleanup_dead_servers",
				      cJSON_IsTrue(cs_cli_get(d, "cleanup_dead_servers")));
		for (size_t k = 0; k < CS_ARRAY_LEN(durs); k++) {
			cs_fmt_go_duration(dur_of(d, durs[k][0]), t, sizeof t);
			cJSON_AddStringToObject(o, durs[k][0], t);
		}
		cJSON_AddNumberToObject(o, "max_trailing_logs", num_of(d, "max_trailing_logs"));
		cJSON_AddNumberToObject(o, "min_quorum", num_of(d, "min_quorum"));
		cs_cli_print_json(o, true);
		cJSON_Delete(o);
		code = 0;
	} else {
		struct cs_fmt_lines l = {NULL, 0, 0};
		cs_fmt_lines_add(&l, "Key | Value");
		cs_fmt_lines_add(&l, "Cleanup Dead Servers | %s",
				 cJSON_IsTrue(cs_cli_get(d, "cleanup_dead_servers")) ? "true"
										     : "false");
		for (size_t k = 0; k < CS_ARRAY_LEN(durs); k++) {
			cs_fmt_go_duration(dur_of(d, durs[k][0]), t, sizeof t);
			cs_fmt_lines_add(&l, "%s | %s", durs[k][1], t);
		}
		cs_fmt_lines_add(&l, "Min Quorum | %.0f", num_of(d, "min_quorum"));
		cs_fmt_lines_add(&l, "Max Trailing Logs | %.0f", num_of(d, "max_trailing_logs"));
		cs_fmt_lines_add(
		    &l, "Disable Upgrade Migration | %s",
		    cJSON_IsTrue(cs_cli_get(d, "disable_upgrade_migration")) ? "true" : "false");
		print_lines_table(&l);
		code = 0;
	}
	cs_client_resp_free(&r);
	return code;
}

static void add_dur(cJSON *o, const char *k, int64_t secs)
{
	char t[32];
	if (secs <= 0)
		return; /* unset (Vault sends only positive durations) */
	cs_fmt_go_duration(secs, t, sizeof t);
	cJSON_AddStringToObject(o, k, t);
}

static int autopilot_set_config(struct cli *c, int argc, char **argv, int start)
{
	int code;
	if (start_exact(c, C_RAPSET, argc, argv, start, 0, &code) < 0)
		return code;
	if (c->max_trailing_logs < 0 || c->min_quorum < 0) {
		fprintf(stderr, "invalid value: -max-trailing-logs and -min-quorum must not be "
				"negative\n");
		return 1;
	}
	cJSON *body = cJSON_CreateObject();
	if (c->cleanup_dead_servers_set)
		cJSON_AddBoolToObject(body, "cleanup_dead_servers", c->cleanup_dead_servers);
	if (c->max_trailing_logs > 0)
		cJSON_AddNumberToObject(body, "max_trailing_logs", (double)c->max_trailing_logs);
	if (c->min_quorum > 0)
		cJSON_AddNumberToObject(body, "min_quorum", (double)c->min_quorum);
	add_dur(body, "last_contact_threshold", c->last_contact_threshold);
	add_dur(body, "dead_server_last_contact_threshold", c->dead_server_last_contact_threshold);
	add_dur(body, "server_stabilization_time", c->server_stabilization_time);
	struct cs_client_resp r;
	if (!cs_cli_call(c, "POST", "sys/storage/raft/autopilot/configuration", NULL, body, &r,
			 NULL)) {
		code = 2;
	} else if (r.status != 204 && r.body.len && cJSON_IsObject(r.json)) {
		code = cs_cli_output_secret(c, r.json);
	} else {
		code = 0;
	}
	cs_client_resp_free(&r);
	cJSON_Delete(body);
	return code;
}

/* ------------------------------------------------------------------ snapshots */

struct progress {
	uint64_t shown; /* bytes at the last line printed */
};

/* Progress on stderr (only when it is a terminal): one line rewritten per MiB. */
static void show_progress(void *ud, uint64_t done, uint64_t total)
{
	struct progress *p = ud;
	if (done - p->shown < (1u << 20))
		return;
	p->shown = done;
	if (total)
		fprintf(stderr, "\rsaving snapshot: %.1f of %.1f MiB", (double)done / 1048576.0,
			(double)total / 1048576.0);
	else
		fprintf(stderr, "\rsaving snapshot: %.1f MiB", (double)done / 1048576.0);
	fflush(stderr);
}

/* A gzip stream starts with 1f 8b: anything else is not a snapshot. */
static bool looks_like_gzip(int fd)
{
	unsigned char m[2];
	return pread(fd, m, 2, 0) == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

static int snapshot_save(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = start_exact(c, C_RSSAVE, argc, argv, start, 1, &code);
	if (i < 0)
		return code;
	char *path = cs_cli_trim_dup(argv[i], strlen(argv[i]));
	if (!*path) {
		fprintf(stderr, "Output file name is required\n");
		free(path);
		return 1;
	}
	struct cs_buf tmp = CS_BUF_INIT;
	cs_buf_printf(&tmp, "%s.tmp-XXXXXX", path);
	int fd = mkstemp(tmp.data); /* mode 0600: a snapshot holds every secret (encrypted) */
	if (fd < 0) {
		fprintf(stderr, "Error taking the snapshot: open %s: %s\n", path, strerror(errno));
		cs_buf_free(&tmp);
		free(path);
		return 2;
	}
	struct progress pr = {0};
	bool tty = isatty(STDERR_FILENO);
	struct cs_client_stream s = {-1, 0, fd, tty ? show_progress : NULL, &pr, 0};
	struct cs_client_resp r;
	int rc = cs_client_request_stream(&c->client, "GET", "sys/storage/raft/snapshot", &s, &r);
	if (tty && pr.shown)
		fputc('\n', stderr);
	code = 2;
	if (rc != 0 || !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error taking the snapshot");
	} else if (s.out_bytes == 0 || !looks_like_gzip(fd)) {
		fprintf(stderr, "Error taking the snapshot: the server's answer is not a "
				"snapshot archive\n");
	} else if (fsync(fd) != 0) {
		fprintf(stderr, "Error taking the snapshot: write %s: %s\n", path, strerror(errno));
	} else {
		code = 0;
	}
	if (close(fd) != 0 && code == 0) {
		fprintf(stderr, "Error taking the snapshot: write %s: %s\n", path, strerror(errno));
		code = 2;
	}
	if (code == 0 && rename(tmp.data, path) != 0) {
		fprintf(stderr, "Error taking the snapshot: rename to %s: %s\n", path,
			strerror(errno));
		code = 2;
	}
	if (code != 0)
		unlink(tmp.data);
	cs_client_resp_free(&r);
	cs_buf_free(&tmp);
	free(path);
	return code;
}

static int snapshot_restore(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_RSRESTORE, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (wrong_count(argc - i, 1))
		return 1;
	char *path = cs_cli_trim_dup(argv[i], strlen(argv[i]));
	if (!*path) {
		fprintf(stderr, "Snapshot file name is required\n");
		free(path);
		return 1;
	}
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "Error opening snapshot file: open %s: %s\n", path,
			fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		free(path);
		return 2;
	}
	free(path);
	if (cs_cli_make_client(c)) {
		close(fd);
		return 2;
	}
	struct cs_client_stream s = {fd, (uint64_t)st.st_size, -1, NULL, NULL, 0};
	struct cs_client_resp r;
	int rc = cs_client_request_stream(
	    &c->client, "POST",
	    c->force ? "sys/storage/raft/snapshot-force" : "sys/storage/raft/snapshot", &s, &r);
	close(fd);
	if (rc != 0 || !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error installing the snapshot");
		code = 2;
	} else {
		code = 0; /* Vault prints nothing on success */
	}
	cs_client_resp_free(&r);
	return code;
}

/* Vault's ByteSize: 1024-based units with one decimal, ".0" dropped. */
static void byte_size(struct cs_buf *b, double n)
{
	static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
	size_t u = 0;
	if (n == 0) {
		cs_buf_puts(b, "0");
		return;
	}
	while (u + 1 < CS_ARRAY_LEN(units) && n >= 1024) {
		n /= 1024;
		u++;
	}
	char t[32];
	snprintf(t, sizeof t, "%.1f", n);
	size_t len = strlen(t);
	if (len > 2 && strcmp(t + len - 2, ".0") == 0)
		t[len - 2] = '\0';
	cs_buf_printf(b, "%s%s", t, units[u]);
}

/* KeyCounts entries by count (descending), then name, as Vault sorts its key stats. */
static int cmp_count_desc(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	if (x->valuedouble != y->valuedouble)
		return x->valuedouble < y->valuedouble ? 1 : -1;
	return strcmp(x->string, y->string);
}

static const cJSON **sorted_counts(const cJSON *counts, size_t *n)
{
	*n = 0;
	for (const cJSON *k = cJSON_IsObject(counts) ? counts->child : NULL; k; k = k->next)
		(*n)++;
	const cJSON **v = calloc(*n ? *n : 1, sizeof *v);
	if (!v)
		abort();
	*n = 0;
	for (const cJSON *k = cJSON_IsObject(counts) ? counts->child : NULL; k; k = k->next)
		v[(*n)++] = k;
	qsort(v, *n, sizeof *v, cmp_count_desc);
	return v;
}

/* Vault's OutputFormat struct (Go field names): Meta, StatsKV, totals. */
static cJSON *inspect_json(const cJSON *m)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *meta = cJSON_AddObjectToObject(o, "Meta");
	cJSON_AddStringToObject(meta, "ID", str_of(m, "ID"));
	static const char *const nums[] = {"Size", "Index", "Term", "Version"};
	for (size_t k = 0; k < CS_ARRAY_LEN(nums); k++)
		cJSON_AddNumberToObject(meta, nums[k], num_of(m, nums[k]));
	cJSON *stats = cJSON_AddArrayToObject(o, "StatsKV");
	size_t n;
	const cJSON **v = sorted_counts(cs_cli_get(m, "KeyCounts"), &n);
	for (size_t k = 0; k < n; k++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "Name", v[k]->string);
		cJSON_AddNumberToObject(e, "Count", v[k]->valuedouble);
		cJSON_AddItemToArray(stats, e);
	}
	free(v);
	cJSON_AddNumberToObject(o, "TotalCountKV", num_of(m, "Entries"));
	cJSON_AddNumberToObject(o, "TotalSizeKV", num_of(m, "StateSize"));
	return o;
}

static void inspect_table(struct cs_buf *out, const cJSON *m)
{
	struct cs_fmt_lines l = {NULL, 0, 0};
	cs_fmt_lines_add(&l, " ID | %s", str_of(m, "ID"));
	static const char *const nums[] = {"Size", "Index", "Term", "Version"};
	for (size_t k = 0; k < CS_ARRAY_LEN(nums); k++)
		cs_fmt_lines_add(&l, " %s | %.0f", nums[k], num_of(m, nums[k]));
	cs_fmt_columns(out, &l, "|");
	cs_fmt_lines_free(&l);
	cs_buf_puts(out, "\n\n");
	cs_fmt_lines_add(&l, " Key Name | Count");
	cs_fmt_lines_add(&l, " ---- | ----");
	size_t n;
	const cJSON **v = sorted_counts(cs_cli_get(m, "KeyCounts"), &n);
	for (size_t k = 0; k < n; k++)
		cs_fmt_lines_add(&l, " %s | %.0f", v[k]->string, v[k]->valuedouble);
	free(v);
	cs_fmt_lines_add(&l, " ---- | ----");
	cs_fmt_lines_add(&l, " Total Entries | %.0f", num_of(m, "Entries"));
	struct cs_buf sz = CS_BUF_INIT;
	byte_size(&sz, num_of(m, "StateSize"));
	cs_fmt_lines_add(&l, " Total Size | %s", sz.data);
	cs_buf_free(&sz);
	cs_fmt_columns(out, &l, "|");
	cs_fmt_lines_free(&l);
}

/* Inspect needs no server: the archive is verified (hashes) and described locally. */
static int snapshot_inspect(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_RSINSPECT, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (argc - i == 0) {
		fprintf(stderr, "Missing FILE argument\n");
		return 1;
	}
	if (argc - i > 1) {
		fprintf(stderr, "Too many arguments (expected 1, got %d)\n", argc - i);
		return 1;
	}
	cJSON *meta = NULL;
	char err[512] = "";
	if (cs_snapshot_inspect(argv[i], &meta, err, sizeof err) != 0) {
		fprintf(stderr, "Error reading snapshot: %s\n", err[0] ? err : "invalid snapshot");
		cJSON_Delete(meta);
		return 1;
	}
	if (cs_cli_is_json(c)) {
		cJSON *o = inspect_json(meta);
		cs_cli_print_json(o, false);
		cJSON_Delete(o);
	} else {
		struct cs_buf b = CS_BUF_INIT;
		inspect_table(&b, meta);
		cs_cli_emit(stdout, &b);
	}
	cJSON_Delete(meta);
	return 0;
}

/* ------------------------------------------------------------------ step-down */

int cs_cli_step_down(struct cli *c, int argc, char **argv, int start)
{
	int code;
	if (cs_cli_start(c, C_STEPDOWN, argc, argv, start, 0, 0, "0", &code) < 0)
		return code;
	struct cs_client_resp r;
	if (cs_cli_call(c, "PUT", "sys/step-down", NULL, NULL, &r, "Error stepping down")) {
		printf("Success! Stepped down: %s\n", c->client.addr);
		code = 0;
	} else {
		code = 2;
	}
	cs_client_resp_free(&r);
	return code;
}

/* ------------------------------------------------------------------ dispatch */

static int raft_autopilot(struct cli *c, int argc, char **argv, int start)
{
	static const struct cs_cli_sub subs[] = {{"state", autopilot_state},
						 {"get-config", autopilot_get_config},
						 {"set-config", autopilot_set_config}};
	return cs_cli_dispatch(c, argc, argv, start, subs, CS_ARRAY_LEN(subs), usage_autopilot);
}

static int raft_snapshot(struct cli *c, int argc, char **argv, int start)
{
	static const struct cs_cli_sub subs[] = {
	    {"save", snapshot_save},
	    {"restore", snapshot_restore},
	    {"inspect", snapshot_inspect},
	};
	return cs_cli_dispatch(c, argc, argv, start, subs, CS_ARRAY_LEN(subs), usage_snapshot);
}

int cs_cli_operator_raft(struct cli *c, int argc, char **argv, int start)
{
	static const struct cs_cli_sub subs[] = {{"join", raft_join},
						 {"list-peers", raft_list_peers},
						 {"remove-peer", raft_remove_peer},
						 {"autopilot", raft_autopilot},
						 {"snapshot", raft_snapshot}};
	return cs_cli_dispatch(c, argc, argv, start, subs, CS_ARRAY_LEN(subs), usage_raft);
}
