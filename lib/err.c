#include "lib/err.h"

static const struct {
	const char *name;
	int status;
	const char *text;
} table[] = {
#define CS__ERR_ROW(name, status, text) {#name, status, text},
    CS_ERRORS(CS__ERR_ROW)
#undef CS__ERR_ROW
};

const char *cs_strerror(int code)
{
	if (code < 0 || code >= CS_E__COUNT)
		return "unknown error";
	return table[code].text;
}

int cs_err_status(int code)
{
	if (code < 0 || code >= CS_E__COUNT)
		return 500;
	return table[code].status;
}

const char *cs_errname(int code)
{
	if (code < 0 || code >= CS_E__COUNT)
		return "CS_E?";
	return table[code].name;
}
