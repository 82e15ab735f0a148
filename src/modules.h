/* modules.h - what main puts together: the [sections] of every module. */
#ifndef DEYE_MODULES_H
#define DEYE_MODULES_H

#include "conf.h"

/* Every module's [section] for conf_new(), NULL-terminated, in the order
 * -n prints them: the sinks', then [metrics]. */
const struct conf_section *const *modules_sections(void);

#endif
