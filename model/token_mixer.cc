#include "model/token_mixer.h"

#include <algorithm>
#include <stdexcept>

namespace mixserve::model {

namespace {
thread_local bool capturing_step = false;
}  // namespace

bool CapturingStep() { return capturing_step; }
StepCaptureScope::StepCaptureScope() : outer_(capturing_step) { capturing_step = true; }
StepCaptureScope::~StepCaptureScope() { capturing_step = outer_; }

void RequireNoSize(const MixerContext& ctx, const std::string& name) {
  if (!ctx.spec.size.empty() || ctx.spec.hidden != 0)
    throw std::invalid_argument(name + " at " + SiteName(ctx.site) +
                                " has no sizes (size/hidden are options of the feed-forward "
                                "replacements), got size '" + ctx.spec.size + "' hidden " +
                                std::to_string(ctx.spec.hidden));
}

MixerRegistry& MixerRegistry::Get() {
  static MixerRegistry registry;
  return registry;
}

void MixerRegistry::Register(const std::string& name, std::set<Site> sites,
                             MixerFactory factory) {
  for (const auto& e : entries_)
    if (e.first == name) throw std::logic_error("mixer '" + name + "' registered twice");
  entries_.push_back({name, Entry{std::move(sites), std::move(factory)}});
  std::sort(entries_.begin(), entries_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
}

std::vector<std::string> MixerRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& e : entries_) names.push_back(e.first);
  return names;
}

std::set<Site> MixerRegistry::Sites(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.first == name) return e.second.sites;
  return {};
}

bool MixerRegistry::Supports(const std::string& name, Site site) const {
  return Sites(name).count(site) > 0;
}

bool MixerRegistry::TakesSize(const std::string& name, const ModelSpec& shape) const {
  for (Site site : Sites(name)) {
    try {
      Create(MixerContext{&shape, site, 0, MixerSpec{name, "xs", 0, 0, 0}});
      return true;
    } catch (const std::invalid_argument&) {
    }
  }
  return false;
}

std::shared_ptr<TokenMixer> MixerRegistry::Create(const MixerContext& ctx) const {
  const std::string& name = ctx.spec.type;
  for (const auto& e : entries_) {
    if (e.first != name) continue;
    if (!e.second.sites.count(ctx.site))
      throw std::invalid_argument("mixer '" + name + "' does not support site " +
                                  SiteName(ctx.site) + " (layer " + std::to_string(ctx.layer) +
                                  ")");
    return e.second.factory(ctx);
  }
  std::string known;
  for (const auto& e : entries_) known += (known.empty() ? "" : ", ") + e.first;
  throw std::invalid_argument("unknown mixer '" + name + "' at " + SiteName(ctx.site) +
                              " layer " + std::to_string(ctx.layer) + " (known: " + known + ")");
}

}  // namespace mixserve::model
