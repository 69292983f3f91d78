/*
 * Mount visibility for sys/internal/ui/mounts (see visibility.h). The three steps follow
 * OpenBao's hasMountAccess (vault/logical_system.go) and the bare-mount mode of
 * ACL.CheckAllowedFromNonExactPaths (vault/policy/acl.go): the UI must not list a mount
 * the token can do nothing on, and must list one where it can reach some deeper path.
 */
#include "policy/visibility.h"

#include <string.h>

/* Capabilities of every live rule with this kind and exact text, merged as the ACL
 * merges them: the union, but a deny anywhere makes it deny only. */
static unsigned merged_caps(const struct cs_policy *const *pols, size_t n, enum cs_rule_kind kind,
			    const char *path)
{
	unsigned caps = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; pols[i] && j < pols[i]->n_rules; j++) {
			const struct cs_policy_rule *r = &pols[i]->rules[j];
			if (r->kind == kind && !r->templated && strcmp(r->path, path) == 0)
				caps |= r->caps;
		}
	}
	return (caps & CS_CAP_DENY) ? CS_CAP_DENY : caps;
}

static bool grants(unsigned caps)
{
	return caps && !(caps & CS_CAP_DENY);
}

/* Length of the next '/'-separated segment of s. */
static size_t seg_len(const char *s)
{
	return strcspn(s, "/");
}

/*
 * Whether the segment rule `pat` ("a/+/b", "+/x*") matches the segments of `mount`
 * ("a/b/", with its trailing '/') from its start: every mount segment is taken by one
 * pattern segment ('+' any, a literal equal, or the pattern's last segment followed by
 * '*' a prefix of it). A pattern with fewer segments than the mount does not match here;
 * one whose glob covers the mount itself was found by the capability lookup (step 1).
 */
static bool segment_covers(const char *pat, const char *mount)
{
	size_t pl = strlen(pat);
	bool prefix = pl > 0 && pat[pl - 1] == '*';
	if (prefix)
		pl--;
	const char *p = pat, *pend = pat + pl, *m = mount;
	while (*m) {
		size_t ml = seg_len(m);
		if (p > pend)
			return false; /* pattern used up before the mount */
		size_t wl = strcspn(p, "/");
		if (p + wl > pend)
			wl = (size_t)(pend - p);
		bool last = p + wl == pend;
		if (wl == 1 && p[0] == '+')
			;
		else if (wl == ml && memcmp(p, m, ml) == 0)
			;
		else if (last && prefix && ml >= wl && memcmp(p, m, wl) == 0)
			return true; /* the glob takes the rest of the mount path */
		else
			return false;
		m += ml;
		if (*m == '/')
			m++;
		p += wl + 1;
	}
	return true;
}

bool cs_acl_mount_visible(const struct cs_policy *const *pols, size_t n, const char *mount_path)
{
	if (grants(cs_acl_capabilities(pols, n, mount_path)))
		return true;
	size_t ml = strlen(mount_path);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; pols[i] && j < pols[i]->n_rules; j++) {
			const struct cs_policy_rule *r = &pols[i]->rules[j];
			if (r->templated)
				continue;
			bool under;
			if (r->kind == CS_RULE_SEGMENT)
				under = segment_covers(r->path, mount_path);
			else
				under = strncmp(r->path, mount_path, ml) == 0;
			if (under && grants(merged_caps(pols, n, r->kind, r->path)))
				return true;
		}
	}
	return false;
}
