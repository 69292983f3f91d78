/*
 * libFuzzer target for join challenge/answer decoding on the joining node (raft/join.c):
 * the bodies a node gets back from whatever answered at its join target — the challenge
 * reply (challenge + seal_config) and the answer reply (the cluster TLS keyring with the
 * CA certificate and key in PEM). The leader's side of the exchange (the unauthenticated
 * sys/storage/raft/bootstrap/challenge and /answer handlers) is reached through the HTTP
 * target, whose corpus has requests for both.
 *
 * Input: byte 0 selects the decoder (even: challenge, odd: answer); the rest is the body.
 * Challenge: cs_join_got_challenge() must refuse the body (back to IDLE) or take it
 * (CHALLENGED); a taken challenge is then opened with a fixed key-encryption key the way
 * unsealing does (cs_join_keys), which must fail cleanly (the body was not sealed by that
 * key). Answer: the JSON reply through cs_join_answer_load() (CA certificate, this node's
 * certificate, which must fit the node's own join key, raft id and the CA), refused or
 * loaded; and its "tls_keyring" through cs_cluster_keyring_decode(), the decoder of the
 * stored cluster keyring (storage/cluster_keyring.c).
 * The harness resets the join state after each input.
 *
 * Only the state the decoders touch is set up: no loop, no HTTP (a request the machine
 * would send fails at once), no raft.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "raft/join.h"
#include "server/seal.h"
#include "storage/cluster_keyring.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cs_join fj;
static EVP_PKEY *fkey; /* the joining node's key: answer_load takes a reference */
static int f_shares, f_threshold;

static void f_challenged(void *ctx, int shares, int threshold)
{
	f_shares = shares;
	f_threshold = threshold;
}

static void f_cancelled(void *ctx) {}

static int f_accepted(void *ctx, X509 *ca, struct cs_cluster_cred *minted, const cJSON *peers)
{
	X509_free(ca);
	cs_cluster_cred_free(minted);
	return CS_EIO;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	cs_log_set_level(CS_LOG_ERROR);
	if (cs_cluster_tls_gen_key(&fkey) != 0)
		abort();
	fj.env = (struct cs_join_env){
	    .node_id = "node-2",
	    .cluster_addr = "127.0.0.1:8201",
	    .seal_config_decode = cs_seal_config_decode,
	    .challenged = f_challenged,
	    .cancelled = f_cancelled,
	    .accepted = f_accepted,
	};
	fj.closing = true; /* no loop: the retry timer is never touched */
	struct cs_join_target t = {"https://127.0.0.1:1", NULL, NULL, NULL, NULL};
	if (cs_join_set_targets(&fj, &t, 1, false, false) != 0)
		abort();
	return 0;
}

static void challenge(const char *body)
{
	fj.state = CS_JOIN_SEEKING;
	cs_join_got_challenge(&fj, body);
	if (fj.state == CS_JOIN_CHALLENGED) {
		if (f_shares < 1 || f_threshold < 1 || f_threshold > f_shares)
			abort(); /* the seal config bounds were not applied */
		uint8_t kek[CS_KEY_LEN];
		memset(kek, 0x5a, sizeof kek);
		char err[256];
		if (cs_join_keys(&fj, kek, err, sizeof err) != CS_EINVAL)
			abort(); /* no input here is sealed under this key */
	} else if (fj.state != CS_JOIN_IDLE) {
		abort();
	}
	cs_join_fire(&fj, CS_JOIN_EV_SHUTDOWN); /* wipes the challenge and any KEK */
	if (fj.state != CS_JOIN_IDLE || fj.challenge || fj.kek)
		abort();
	f_shares = f_threshold = 0;
}

static void answer(const char *body)
{
	cJSON *j = cJSON_Parse(body);
	const cJSON *kr = cJSON_GetObjectItemCaseSensitive(cs_join_data_of(j), "tls_keyring");
	struct cs_cluster_cred ca = {0};
	int lrc = kr ? cs_cluster_keyring_decode(kr, &ca) : -1;
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "cs_cluster_keyring_decode: %d\n", lrc);
	if (lrc == 0 && (!ca.cert || !ca.key))
		abort();
	cs_cluster_cred_free(&ca);

	if (!fj.key) {
		EVP_PKEY_up_ref(fkey);
		fj.key = fkey;
	}
	X509 *cacert = NULL;
	struct cs_cluster_cred minted = {0};
	int arc = cs_join_answer_load(&fj, cs_join_data_of(j), &cacert, &minted);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "answer_load: %d\n", arc);
	if (arc == 0 && (!cacert || !minted.cert || minted.key != fkey || fj.key))
		abort();
	if (arc != 0 && (cacert || minted.cert))
		abort();
	cs_json_delete_wiped(j);
	X509_free(cacert);
	cs_cluster_cred_free(&minted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	char *body = malloc(size);
	memcpy(body, data + 1, size - 1);
	body[size - 1] = '\0';
	if (data[0] % 2 == 0)
		challenge(body);
	else
		answer(body);
	free(body);
	return 0;
}
