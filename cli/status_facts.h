/* status_facts: gathers a volume's state into one JSON object, the single
 * source for `status` text and `status --json`. */
#ifndef PEERCLING_STATUS_FACTS_H
#define PEERCLING_STATUS_FACTS_H

#include <json-c/json.h>

/* *out owned by the caller (json_object_put). */
int status_facts_collect(json_object **out, const char *name);

#endif
