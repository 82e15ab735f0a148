/*
 * modules.c - the sections of every module, for conf_new(): each module
 * declares its own beside its code (conf.h), this list only names them.
 * Apart from main.c so that the tests read the same configuration.
 */
#include <stddef.h>

#include "metrics/metrics.h"
#include "modules.h"
#include "sinks/sink.h"

const struct conf_section *const *
modules_sections(void)
{
	static const struct conf_section *all[16];
	const struct conf_section *const *s = sinks_sections();
	size_t n = 0;

	while (s[n] != NULL && n < sizeof all / sizeof all[0] - 2) {
		all[n] = s[n];
		n++;
	}
	all[n++] = &metrics_section;
	all[n] = NULL;
	return all;
}
