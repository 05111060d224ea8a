// Chooses the variant that answers a request: an explicitly named variant, else the route of
// the request's language pair (weighted split, sticky by routing key, optional shadow copy),
// else the single variant of that pair or the lexicographically first one.
#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mixserve/v1/config.pb.h"
#include "mixserve/v1/translation.pb.h"

namespace mixserve {

struct VariantId {
  std::string name;
  int64_t version = 0;
  bool operator==(const VariantId& o) const { return name == o.name && version == o.version; }
  bool operator<(const VariantId& o) const {
    return name < o.name || (name == o.name && version < o.version);
  }
  std::string ToString() const { return name + "/" + std::to_string(version); }
};

// A variant ready to serve, as the router sees it.
struct LoadedVariant {
  VariantId id;
  std::string source_language;
  std::string target_language;
};

struct RouteDecision {
  grpc::Status status;  // NOT_FOUND / INVALID_ARGUMENT when nothing can serve the request
  VariantId primary;
  bool shadow = false;
  VariantId shadow_id;
};

class Router {
 public:
  explicit Router(const std::vector<v1::RouteConfig>& routes = {});

  // Replaces the route of the route's language pair; a route without targets removes it.
  void SetRoute(const v1::RouteConfig& route);
  // Replaces every route at once (configuration reload): requests see the old set or the new
  // one, never a mixture.
  void ReplaceRoutes(const std::vector<v1::RouteConfig>& routes);
  std::vector<v1::RouteConfig> Routes() const;

  // `random` and `shadow_random` are uniform in [0, 1); they decide requests without a
  // routing key. With a key the decision is a stable hash of key and language pair.
  RouteDecision Route(const std::string& source, const std::string& target,
                      const v1::VariantRef& variant, const std::string& routing_key,
                      const std::vector<LoadedVariant>& loaded, double random,
                      double shadow_random) const;

  // Stable map of (key, salt) to [0, 1): FNV-1a 64 followed by a splitmix64 finaliser.
  static double KeyFraction(const std::string& key, uint64_t salt);

 private:
  void SetRouteLocked(const v1::RouteConfig& route);  // mu_ held

  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, v1::RouteConfig> routes_;
};

// The highest loaded version of `name` when version is 0, else that exact version.
const LoadedVariant* FindLoaded(const std::vector<LoadedVariant>& loaded,
                                const std::string& name, int64_t version);

}  // namespace mixserve
