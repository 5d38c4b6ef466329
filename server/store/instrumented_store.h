// A Store decorator that times every operation of the store beneath it:
//
//   tlscache_store_duration_seconds{op}   store operations, until their answer
//   tlscache_store_errors_total{op}       store operations that failed (a miss is not a failure)
//
// op is put, get, delete, get_ring, swap_ring or publish. Everything else passes through.
//
// Thread-safety: as the store beneath it; the metric families are thread-safe.
#ifndef TLSCACHE_SERVER_STORE_INSTRUMENTED_STORE_H_
#define TLSCACHE_SERVER_STORE_INSTRUMENTED_STORE_H_

#include <memory>

#include "server/observability/metrics.h"
#include "server/store/store.h"

namespace tlscache::server {

// Registers the two families in `metrics`, which outlives the returned store.
std::unique_ptr<Store> InstrumentStore(std::unique_ptr<Store> inner, Metrics& metrics);

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_STORE_INSTRUMENTED_STORE_H_
