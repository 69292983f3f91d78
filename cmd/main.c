/*
 * The custos binary: `custos server ...` runs the server; every other verb is the CLI.
 *
 * Server start-up: parse flags → core dumps off → load config (or build the -dev
 * one) → core dumps back on only with allow_core_dumps → mlock probe → register
 * backends → open storage and start raft if the data dir has state → listen (-dev:
 * bootstrap, init, unseal and mount secret/ first) → run the loop until SIGINT or
 * SIGTERM → orderly shutdown (listeners, raft, storage) → exit 0.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "audit/audit.h"
#include "auth/approle.h"
#include "auth/token.h"
#include "auth/userpass.h"
#include "cli/cli.h"
#include "cmd/modules.h"
#include "engines/cubbyhole.h"
#include "engines/kv.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "server/policy_sys.h"
#include "server/core.h"
#include "server/ha.h"
#include "server/raft_sys.h"
#include "server/rekey.h"
#include "server/rotate_sys.h"
#include "server/routes.h"
#include "server/snapshot_sys.h"
#include "server/sys.h"
#include "server/wrap.h"

struct server {
	uv_loop_t loop;
	struct cs_config cfg;
	struct cs_core core;
	uv_signal_t sigint, sigterm, sighup;
	char dev_dir[256];
	int exit_code;
};

static void usage(void)
{
	fprintf(stderr,
		"Usage: custos server [options]\n\n"
		"  -config=FILE              server configuration (HCL or JSON); a directory\n"
		"                            loads every *.hcl and *.json file in it\n"
		"  -dev                      development server: in a temporary directory,\n"
		"                            initialised, unsealed, plain HTTP\n"
		"  -dev-listen-address=ADDR  -dev listener address (default 127.0.0.1:8200)\n"
		"  -dev-root-token-id=ID     -dev root token (default: random)\n"
		"  -log-level=LEVEL          trace, debug, info, warn, error\n"
		"  -list-routes              print every route of every backend (JSON) and exit\n"
		"  -list-unauthenticated     print the routes that need no token and exit\n");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void loop_stopped(struct cs_core *core)
{
	struct server *s = CS_CONTAINER_OF(core, struct server, core);
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sighup, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *s = h->data;
	if (signum == SIGHUP) {
		cs_info("server: SIGHUP received, reopening audit devices");
		cs_audit_reopen(&s->core); /* log rotation */
		return;
	}
	cs_info("server: %s received, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
	cs_core_shutdown(&s->core, loop_stopped);
}

static void dev_ready(struct cs_core *core, int status, void *ctx)
{
	struct server *s = ctx;
	if (status) {
		cs_error("server: -dev set-up failed: %s", cs_strerror(status));
		s->exit_code = 1;
		cs_core_shutdown(core, loop_stopped);
		return;
	}
	if (cs_core_listen(core)) {
		cs_error("server: %s", core->errmsg);
		s->exit_code = 1;
		cs_core_shutdown(core, loop_stopped);
		return;
	}
	cs_info("server: dev listener on %s", s->cfg.listeners[0].address);
}

static const char *flag_value(const char *arg, const char *name, int *i, int argc, char **argv)
{
	while (*arg == '-')
		arg++;
	size_t n = strlen(name);
	if (strncmp(arg, name, n) != 0)
		return NULL;
	if (arg[n] == '=')
		return arg + n + 1;
	if (arg[n] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static int build_dev_config(struct server *s, const char *listen, const char *root_id)
{
	struct cs_config *c = &s->cfg;
	snprintf(s->dev_dir, sizeof s->dev_dir, "/tmp/custos-dev-XXXXXX");
	if (!mkdtemp(s->dev_dir)) {
		fprintf(stderr, "custos: cannot create a temporary directory: %s\n",
			strerror(errno));
		return 1;
	}
	c->dev = true;
	c->storage_path = strdup(s->dev_dir);
	c->node_id = strdup("dev");
	c->n_listeners = 1;
	c->listeners[0].address = strdup(listen ? listen : "127.0.0.1:8200");
	c->listeners[0].tls_disable = true;
	c->listeners[0].max_request_size = CS_DEFAULT_MAX_REQUEST_SIZE;
	if (root_id)
		c->dev_root_token_id = strdup(root_id);
	cs_config_finish(c);
	return 0;
}

/* -list-routes / -list-unauthenticated: register every module as the server does, print
 * the tables, exit. Nothing is opened or stored; register_late gets a scratch data dir
 * that is removed again. */
static int list_routes(bool unauth_only)
{
	static struct cs_core core;
	cs_modules_register(&core);
	snprintf(core.data_dir, sizeof core.data_dir, "/tmp/custos-routes-XXXXXX");
	if (!mkdtemp(core.data_dir)) {
		fprintf(stderr, "custos: cannot create a temporary directory: %s\n",
			strerror(errno));
		return 1;
	}
	cs_modules_register_late(&core);
	nftw(core.data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (unauth_only) {
		cs_routes_print_unauthenticated(stdout);
	} else {
		cJSON *j = cs_routes_json();
		char *text = cJSON_Print(j);
		puts(text);
		free(text);
		cJSON_Delete(j);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * Keep key material out of core files (issue 9 §1.8). Before anything is read (the config
 * may hold TLS client keys), core_dumps_off turns dumps off and keeps the hard limit, so
 * that the config's allow_core_dumps = true (debugging only) can turn them back on;
 * otherwise core_dumps_settle also lowers the hard limit, which no later setrlimit of an
 * unprivileged process can raise. PR_SET_DUMPABLE 0 also stops same-user ptrace and
 * /proc/<pid>/mem reads.
 */
static struct rlimit inherited_core;

static int core_dumps_off(void)
{
	if (getrlimit(RLIMIT_CORE, &inherited_core) != 0)
		return -1;
	struct rlimit off = {0, inherited_core.rlim_max};
	if (setrlimit(RLIMIT_CORE, &off) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return -1;
	return 0;
}

static int core_dumps_settle(const struct cs_config *cfg)
{
	if (!cfg->allow_core_dumps) {
		struct rlimit none = {0, 0};
		return setrlimit(RLIMIT_CORE, &none);
	}
	cs_warn("server: allow_core_dumps = true: a core file may contain key material");
	if (setrlimit(RLIMIT_CORE, &inherited_core) != 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
		return -1;
	return 0;
}

static int server_main(int argc, char **argv)
{
	static struct server s; /* large; lives for the whole process */
	const char *config = NULL, *dev_listen = NULL, *dev_root = NULL, *level = NULL;
	bool dev = false, list = false, list_unauth = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		if ((v = flag_value(a, "config", &i, argc, argv)))
			config = v;
		else if ((v = flag_value(a, "dev-listen-address", &i, argc, argv)))
			dev_listen = v;
		else if ((v = flag_value(a, "dev-root-token-id", &i, argc, argv)))
			dev_root = v;
		else if ((v = flag_value(a, "log-level", &i, argc, argv)))
			level = v;
		else if (strcmp(a, "-dev") == 0 || strcmp(a, "--dev") == 0)
			dev = true;
		else if (strcmp(a, "-list-routes") == 0 || strcmp(a, "--list-routes") == 0)
			list = true;
		else if (strcmp(a, "-list-unauthenticated") == 0 ||
			 strcmp(a, "--list-unauthenticated") == 0)
			list_unauth = true;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "-help") == 0 ||
			 strcmp(a, "--help") == 0) {
			usage();
			return 0;
		} else {
			fprintf(stderr, "custos server: unknown argument %s\n\n", a);
			usage();
			return 1;
		}
	}
	if (list || list_unauth)
		return list_routes(list_unauth);
	if (core_dumps_off()) {
		fprintf(stderr, "custos server: cannot disable core dumps: %s\n", strerror(errno));
		return 1;
	}
	if (!dev && !config) {
		fprintf(stderr,
			"custos server: a config file is required (-config=FILE), or -dev\n");
		return 1;
	}
	cs_config_init(&s.cfg);
	if (dev) {
		if (build_dev_config(&s, dev_listen, dev_root))
			return 1;
	} else {
		char err[1024];
		if (cs_config_load(&s.cfg, config, err, sizeof err)) {
			fprintf(stderr, "Error loading configuration: %s\n", err);
			return 1;
		}
	}
	cs_log_set_level((enum cs_log_level)s.cfg.log_level);
	if (level) {
		int l = cs_log_parse_level(level);
		if (l < 0) {
			fprintf(stderr, "custos server: unknown log level %s\n", level);
			return 1;
		}
		cs_log_set_level((enum cs_log_level)l);
	}
	if (core_dumps_settle(&s.cfg)) {
		fprintf(stderr, "custos server: cannot set core dumps: %s\n", strerror(errno));
		return 1;
	}
	/* Fail now, not at unseal, if key memory cannot be locked. */
	cs_secmem_set_mlock(!s.cfg.disable_mlock);
	cs_secmem_free(cs_secmem_alloc(CS_KEY_LEN), CS_KEY_LEN);

	cs_modules_register(&s.core);

	uv_loop_init(&s.loop);
	int rc = cs_core_init(&s.core, &s.loop, &s.cfg);
	if (rc) {
		cs_error("server: %s", s.core.errmsg);
		return 1;
	}
	cs_modules_register_late(&s.core);
	uv_signal_init(&s.loop, &s.sigint);
	uv_signal_init(&s.loop, &s.sigterm);
	uv_signal_init(&s.loop, &s.sighup);
	s.sigint.data = s.sigterm.data = s.sighup.data = &s;
	uv_signal_start(&s.sigint, on_signal, SIGINT);
	uv_signal_start(&s.sigterm, on_signal, SIGTERM);
	uv_signal_start(&s.sighup, on_signal, SIGHUP);

	if (dev) {
		cs_core_dev_setup(&s.core, dev_ready, &s);
	} else if (cs_core_listen(&s.core)) {
		cs_error("server: %s", s.core.errmsg);
		s.exit_code = 1;
		cs_core_shutdown(&s.core, loop_stopped);
	} else {
		for (int i = 0; i < s.cfg.n_listeners; i++)
			cs_info("server: listening on %s (%s), node %s, data %s",
				s.cfg.listeners[i].address,
				s.cfg.listeners[i].tls_disable ? "http" : "https", s.cfg.node_id,
				s.cfg.storage_path);
		cs_info("server: %s", s.core.initialized ? "initialised; sealed until unsealed"
							 : "not initialised (PUT /v1/sys/init)");
	}
	uv_run(&s.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&s.loop) == UV_EBUSY)
		cs_warn("server: event loop closed with live handles");
	cs_core_release_state(&s.core); /* wipes what modules kept (salt, key custody) */
	if (dev && s.dev_dir[0])
		nftw(s.dev_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	cs_config_free(&s.cfg);
	cs_info("server: stopped");
	return s.exit_code;
}

int main(int argc, char **argv)
{
	/* A peer that goes away must not kill us on write (docs/architecture.md, C1). */
	signal(SIGPIPE, SIG_IGN);
	/* raft's disk I/O lives in libuv's pool: keep it roomy (docs/architecture.md, C2). */
	setenv("UV_THREADPOOL_SIZE", "16", 0);
	if (argc >= 2 && strcmp(argv[1], "server") == 0)
		return server_main(argc - 1, argv + 1);
	return cs_cli_main(argc, argv);
}
