#include "server/response.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "server/router.h"

char *cs_response_envelope(const struct cs_request *req, size_t *len)
{
	cJSON *o = cJSON_CreateObject();
	char id[37];
	cs_uuid(id);
	cJSON_AddStringToObject(o, "request_id", id);
	cJSON_AddStringToObject(o, "lease_id", req->lease_id ? req->lease_id : "");
	cJSON_AddBoolToObject(o, "renewable", req->renewable);
	cJSON_AddNumberToObject(o, "lease_duration", (double)req->lease_duration);
	if (req->resp_data)
		cJSON_AddItemReferenceToObject(o, "data", req->resp_data);
	else
		cJSON_AddNullToObject(o, "data");
	cJSON_AddNullToObject(o, "wrap_info");
	if (req->warnings)
		cJSON_AddItemReferenceToObject(o, "warnings", req->warnings);
	else
		cJSON_AddNullToObject(o, "warnings");
	if (req->resp_auth)
		cJSON_AddItemReferenceToObject(o, "auth", req->resp_auth);
	else
		cJSON_AddNullToObject(o, "auth");
	cJSON_AddStringToObject(o, "mount_type",
				req->mount && req->mount->type ? req->mount->type : "");
	if (req->data_to_top && req->resp_data) {
		const cJSON *c;
		cJSON_ArrayForEach(c, req->resp_data)
		{
			if (!cJSON_GetObjectItemCaseSensitive(o, c->string))
				cJSON_AddItemReferenceToObject(o, c->string, (cJSON *)c);
		}
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o); /* references only: the request keeps its data */
	*len = strlen(s);
	return s;
}

char *cs_response_errors(const char *msg, size_t *len)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *a = cJSON_AddArrayToObject(o, "errors");
	if (msg)
		cJSON_AddItemToArray(a, cJSON_CreateString(msg));
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	*len = strlen(s);
	return s;
}
