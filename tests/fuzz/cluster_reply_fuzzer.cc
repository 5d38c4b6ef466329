// Fuzzes what a Redis Cluster node tells the router (server/store/redis/cluster_slots.h): any RESP
// reply, as hiredis reads it with the store's bound on arrays, through ParseClusterSlots, and any
// error text through ParseRedirect. A map that parses has only slots within 0..16383 and masters
// with a host and a port; a redirect that parses names a slot and a port in range.
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "server/store/redis/cluster_slots.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tlscache::server::redis;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  if (auto redirect = ParseRedirect(bytes)) {
    if (redirect->slot < 0 || redirect->slot >= kClusterSlots || redirect->to.host.empty() ||
        redirect->to.port < 1 || redirect->to.port > 65535) {
      std::abort();
    }
  }
  if (KeySlot(bytes) < 0 || KeySlot(bytes) >= kClusterSlots) std::abort();

  redisReader* reader = redisReaderCreate();
  if (reader == nullptr) return 0;
  BoundReplyArrays(reader);  // as every connection of the store reads
  void* reply = nullptr;
  if (redisReaderFeed(reader, bytes.data(), bytes.size()) == REDIS_OK &&
      redisReaderGetReply(reader, &reply) == REDIS_OK && reply != nullptr) {
    auto ranges = ParseClusterSlots(*static_cast<redisReply*>(reply), "fallback");
    if (ranges.ok()) {
      for (const SlotRange& range : *ranges) {
        if (range.first < 0 || range.last < range.first || range.last >= kClusterSlots ||
            range.master.host.empty() || range.master.port < 1 || range.master.port > 65535) {
          std::abort();
        }
      }
    }
    freeReplyObject(reply);
  }
  redisReaderFree(reader);
  return 0;
}
