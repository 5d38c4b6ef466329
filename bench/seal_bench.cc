// tlscache-seal-bench: what sealing costs. The AES-256-GCM seal and open of one session on
// their own, and a Put + Get of a session through gRPC to an in-process server on the memory
// store, unsealed and sealed, in the same run, so the difference is the added latency.
//
//   build/bin/tlscache-seal-bench [--benchmark_min_time=2]
#include <grpcpp/create_channel.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "server/cache_server.h"
#include "server/security/sealer.h"
#include "server/store/store_factory.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::server {
namespace {

std::unique_ptr<Sealer> MakeSealer() {
  std::vector<SecretBytes> keys;
  keys.emplace_back(std::string(kSealKeyBytes, '\x5a'));
  return *Sealer::Create(std::move(keys));
}

void BM_Seal(benchmark::State& state) {
  auto sealer = MakeSealer();
  const std::string session(state.range(0), 's');
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        sealer->Seal(SealedKind::kSession, "edge", "0123456789abcdef", session));
  }
}
BENCHMARK(BM_Seal)->Arg(256)->Arg(1024)->Arg(4096);

void BM_Open(benchmark::State& state) {
  auto sealer = MakeSealer();
  const std::string sealed = *sealer->Seal(SealedKind::kSession, "edge", "0123456789abcdef",
                                           std::string(state.range(0), 's'));
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        sealer->Open(SealedKind::kSession, "edge", "0123456789abcdef", sealed));
  }
}
BENCHMARK(BM_Open)->Arg(256)->Arg(1024)->Arg(4096);

// One Put and one Get of a 1 KiB session, each a synchronous gRPC call over loopback.
void BM_GrpcPutGet(benchmark::State& state) {
  const bool sealed = state.range(0) != 0;
  auto store = CreateStore(StoreConfig{}, sealed ? MakeSealer() : nullptr);
  CacheServerOptions options;
  options.listen = "127.0.0.1:0";
  auto server = CacheServer::Start(options, *std::move(store));
  if (!server.ok()) return state.SkipWithError(std::string(server.status().message()).c_str());
  auto stub = v1::SessionCache::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));
  v1::PutRequest put;
  put.set_namespace_("edge");
  put.set_session_id("0123456789abcdef");
  put.set_session(std::string(1024, 's'));
  v1::GetRequest get;
  get.set_namespace_("edge");
  get.set_session_id("0123456789abcdef");
  for (auto _ : state) {
    grpc::ClientContext put_context, get_context;
    v1::PutResponse put_response;
    v1::GetResponse get_response;
    if (!stub->Put(&put_context, put, &put_response).ok() ||
        !stub->Get(&get_context, get, &get_response).ok()) {
      return state.SkipWithError("call failed");
    }
  }
  state.SetLabel(sealed ? "sealed" : "unsealed");
}
BENCHMARK(BM_GrpcPutGet)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace tlscache::server

BENCHMARK_MAIN();
