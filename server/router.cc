#include "server/router.h"

namespace mixserve {

const LoadedVariant* FindLoaded(const std::vector<LoadedVariant>& loaded,
                                const std::string& name, int64_t version) {
  const LoadedVariant* best = nullptr;
  for (const auto& v : loaded) {
    if (v.id.name != name) continue;
    if (version != 0) {
      if (v.id.version == version) return &v;
    } else if (!best || v.id.version > best->id.version) {
      best = &v;
    }
  }
  return best;
}

Router::Router(const std::vector<v1::RouteConfig>& routes) { ReplaceRoutes(routes); }

void Router::SetRoute(const v1::RouteConfig& route) {
  std::lock_guard<std::mutex> lock(mu_);
  SetRouteLocked(route);
}

void Router::ReplaceRoutes(const std::vector<v1::RouteConfig>& routes) {
  std::lock_guard<std::mutex> lock(mu_);
  routes_.clear();
  for (const auto& r : routes) SetRouteLocked(r);
}

void Router::SetRouteLocked(const v1::RouteConfig& route) {
  auto key = std::make_pair(route.source_language(), route.target_language());
  if (route.targets_size() == 0) {
    routes_.erase(key);
    return;
  }
  v1::RouteConfig r = route;
  if (r.has_shadow() && r.shadow_fraction() == 0) r.set_shadow_fraction(1.0);
  routes_[key] = r;
}

std::vector<v1::RouteConfig> Router::Routes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::RouteConfig> out;
  for (const auto& kv : routes_) out.push_back(kv.second);
  return out;
}

double Router::KeyFraction(const std::string& key, uint64_t salt) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a offset basis
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= salt * 0x9E3779B97F4A7C15ull;
  // splitmix64 finaliser spreads the bits so nearby keys land far apart.
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);  // 53 bits -> [0, 1)
}

RouteDecision Router::Route(const std::string& source, const std::string& target,
                            const v1::VariantRef& variant, const std::string& routing_key,
                            const std::vector<LoadedVariant>& loaded, double random,
                            double shadow_random) const {
  RouteDecision d;
  std::string pair = source + "-" + target;
  if (!variant.name().empty()) {
    const LoadedVariant* v = FindLoaded(loaded, variant.name(), variant.version());
    if (!v) {
      std::string what = variant.version() ? variant.name() + " version " +
                                                 std::to_string(variant.version())
                                           : variant.name();
      d.status = {grpc::StatusCode::NOT_FOUND, "variant " + what + " is not loaded"};
      return d;
    }
    if ((!source.empty() && source != v->source_language) ||
        (!target.empty() && target != v->target_language)) {
      d.status = {grpc::StatusCode::INVALID_ARGUMENT,
                  "variant " + v->id.name + " translates " + v->source_language + "-" +
                      v->target_language + ", not " + pair};
      return d;
    }
    d.primary = v->id;
    return d;
  }

  v1::RouteConfig route;
  bool has_route = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = routes_.find({source, target});
    if (it != routes_.end()) {
      route = it->second;
      has_route = true;
    }
  }
  if (has_route) {
    // Weighted choice among the targets that are loaded now (weights renormalised).
    std::vector<std::pair<const LoadedVariant*, double>> live;
    double total = 0;
    for (const auto& t : route.targets()) {
      const LoadedVariant* v = FindLoaded(loaded, t.variant().name(), t.variant().version());
      if (v && t.weight() > 0 && v->source_language == source && v->target_language == target) {
        live.emplace_back(v, t.weight());
        total += t.weight();
      }
    }
    if (!live.empty()) {
      double u = routing_key.empty() ? random : KeyFraction(routing_key + "\n" + pair, 1);
      double x = u * total, acc = 0;
      d.primary = live.back().first->id;
      for (const auto& [v, w] : live) {
        acc += w;
        if (x < acc) {
          d.primary = v->id;
          break;
        }
      }
      if (route.has_shadow() && !route.shadow().name().empty()) {
        const LoadedVariant* s =
            FindLoaded(loaded, route.shadow().name(), route.shadow().version());
        double us =
            routing_key.empty() ? shadow_random : KeyFraction(routing_key + "\n" + pair, 2);
        if (s && !(s->id == d.primary) && us < route.shadow_fraction() &&
            s->source_language == source && s->target_language == target) {
          d.shadow = true;
          d.shadow_id = s->id;
        }
      }
      return d;
    }
  }
  // No usable route: the only variant of the pair, else the lexicographically first name.
  const LoadedVariant* pick = nullptr;
  for (const auto& v : loaded) {
    if (v.source_language != source || v.target_language != target) continue;
    if (!pick || v.id.name < pick->id.name ||
        (v.id.name == pick->id.name && v.id.version > pick->id.version))
      pick = &v;
  }
  if (!pick) {
    d.status = {grpc::StatusCode::NOT_FOUND, "no loaded variant translates " + pair};
    return d;
  }
  d.primary = pick->id;
  return d;
}

}  // namespace mixserve
