// The command-line help of tlscache's programs: --help lists the program's own flags (those
// defined in its main file) under its usage text; --helpfull lists every flag.
#ifndef TLSCACHE_COMMON_USAGE_H_
#define TLSCACHE_COMMON_USAGE_H_

#include "absl/strings/string_view.h"

namespace tlscache {

// Call before absl::ParseCommandLine.
void SetUsage(absl::string_view usage);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_USAGE_H_
