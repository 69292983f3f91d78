#include "cmd/modules.h"

#include "audit/audit.h"
#include "auth/approle.h"
#include "auth/token.h"
#include "auth/userpass.h"
#include "engines/cubbyhole.h"
#include "engines/identity.h"
#include "engines/kv.h"
#include "engines/pki.h"
#include "engines/database.h"
#include "engines/transit.h"
#include "server/core.h"
#include "server/ha.h"
#include "server/policy_sys.h"
#include "server/pwpolicy_sys.h"
#include "server/raft_sys.h"
#include "server/rekey.h"
#include "server/rotate_sys.h"
#include "server/seal_auto.h"
#include "server/snapshot_sys.h"
#include "server/sys.h"
#include "server/wrap.h"

void cs_modules_register(struct cs_core *core)
{
	cs_seal_auto_register(core); /* seal "transit" / "pkcs11": auto-unseal, migration */
	cs_backend_register(&cs_sys_backend);
	cs_token_register(core); /* token store + expiration manager + sys/leases */
	cs_backend_register(&cs_kv_backend);
	cs_policy_module_init(core); /* ACL policies, sys/policy*, sys/capabilities*, ACL hooks */
	cs_userpass_register();      /* auth method "userpass" */
	cs_approle_register();       /* auth method "approle" */
	/* audit devices, sys/audit*, sys/audit-hash */
	cs_audit_register(core);
	/* cubbyhole/ engine (a token's cubbyhole is destroyed with it) */
	cs_cubbyhole_register(core);
	/* identity/ engine: entities, aliases, groups; login and ACL hooks */
	cs_identity_register(core);
	/* transit engine (encryption as a service) and sys/tools/hash|random */
	cs_transit_register();
	/* PKI engine (certificate authority: issuers, roles, CRLs, OCSP) */
	cs_pki_register();
	/* database engine (PostgreSQL dynamic credentials) */
	cs_database_register();
	/* response wrapping, sys/wrapping/ endpoints */
	cs_wrap_register();
	/* cluster: join, challenge/answer, digest, step-down, ha-status */
	cs_ha_register();
	/* sys/storage/raft/configuration, remove-peer, promote/demote, autopilot */
	cs_raft_sys_register(core);
	/* sys/policies/password*, and named policies for cs_req_generate_password */
	cs_pwpolicy_register(core);
}

void cs_modules_register_late(struct cs_core *core)
{
	/* sys/storage/raft/snapshot[-force]: request bodies spool into the data dir */
	cs_snapshot_register(core);
	/* sys/rotate, sys/key-status, sys/rotate/config: the apply hook goes on the open store
	 * (cs_storage_open clears it); listing only reads the rows. */
	cs_rotate_register(core);
	/* sys/rekey*, sys/generate-root* (key custody); the listeners' options decide whether
	 * rekey needs a token (core->cfg is NULL when only listing routes: the default). */
	cs_rekey_register(core->cfg);
	cs_generate_root_register(core);
}
