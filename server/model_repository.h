// The model repository: <root>/<model>/<version>/{model.pbtxt, model.pt, spm.model,
// metadata.json}. Loads the versions chosen by each model's version policy at start-up and
// on every poll, and on demand through ModelService. A failed load is recorded and reported
// and never disturbs the variants that serve.
#pragma once

#include <grpcpp/support/status.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mixserve/v1/config.pb.h"
#include "mixserve/v1/model_service.pb.h"
#include "server/metrics.h"
#include "server/router.h"
#include "server/variant.h"

namespace mixserve {

class ModelRepository {
 public:
  ModelRepository(const v1::ServerConfig& config, Metrics* metrics);
  ~ModelRepository();

  // Applies the version policies to what the repository holds now (start-up and polls).
  void Sync();
  void StartPolling(int seconds);

  // version 0: the latest version present on disk.
  grpc::Status Load(const std::string& name, int64_t version, v1::ModelVersionStatus* status);
  // version 0: every loaded version of the model.
  grpc::Status Unload(const std::string& name, int64_t version);

  std::shared_ptr<Variant> Get(const VariantId& id) const;
  std::vector<LoadedVariant> Loaded() const;
  v1::ListModelsResponse List(const std::string& name_filter) const;

  // For a variant that is not loaded because it failed (load or decoding): a message for
  // clients, e.g. "variant en-de-alt/1 is unavailable: decoding failed; ..."; "" otherwise.
  // version 0: any version of the model.
  std::string UnavailableReason(const std::string& name, int64_t version) const;

  // Stops every scheduler (accepted work still completes) and waits up to `timeout_s`.
  void DrainAll(double timeout_s);

 private:
  struct Record {
    v1::ModelState state = v1::MODEL_STATE_UNSPECIFIED;
    std::string message;
    std::string fingerprint;  // of the files when a load failed; retried when it changes
    std::string source, target;
    std::string public_reason;  // what clients are told when UNAVAILABLE (no paths)
  };

  const v1::ModelServingConfig& ServingFor(const std::string& name) const;
  std::vector<std::string> ModelNames() const;
  std::vector<int64_t> VersionsOnDisk(const std::string& name) const;
  std::string VersionDir(const std::string& name, int64_t version) const;
  std::string Fingerprint(const std::string& dir) const;
  // Loads one version (load_mu_ held). Returns OK or the reason it failed.
  grpc::Status LoadLocked(const std::string& name, int64_t version);
  void UnloadLocked(const VariantId& id, const std::string& why);
  // The variant's engine kept failing (scheduler worker thread): it leaves service and is
  // marked UNAVAILABLE until it is loaded again (ModelService) or its files change (polling).
  void MarkFailed(const VariantId& id, const Variant* v, const std::string& error);
  void SetRecord(const VariantId& id, v1::ModelState state, const std::string& message);
  void FillStatus(const VariantId& id, v1::ModelVersionStatus* status) const;
  void ReapRetired();

  v1::ServerConfig config_;
  v1::ModelServingConfig default_serving_;
  Metrics* metrics_;
  std::mutex load_mu_;  // serialises loads, unloads and syncs
  mutable std::mutex mu_;
  std::map<VariantId, std::shared_ptr<Variant>> loaded_;
  std::map<VariantId, Record> records_;
  std::set<VariantId> pinned_in_, pinned_out_;  // ModelService decisions override policies
  std::vector<std::shared_ptr<Variant>> retired_;  // unloaded, draining
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool stop_poll_ = false;
  std::thread poller_;
};

}  // namespace mixserve
