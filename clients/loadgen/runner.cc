#include "clients/loadgen/runner.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <utility>
#include <thread>

#include "clients/loadgen/stats.h"
#include "mixserve/v1/translation.grpc.pb.h"

namespace mixserve::loadgen {
namespace {

namespace pb = ::mixserve::v1;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

class Driver {
 public:
  Driver(const Options& o, const std::vector<std::string>& sources,
         const std::vector<std::shared_ptr<grpc::Channel>>& channels)
      : o_(o), sources_(sources) {
    for (const auto& c : channels) stubs_.push_back(pb::TranslationService::NewStub(c));
    targets_ = o.variants.empty() ? 1 : o.variants.size();
    // Neither bound given: one pass over the test set.
    limit_ = o.count > 0 ? static_cast<std::size_t>(o.count)
                         : (o.duration_s > 0 ? 0 : sources.size());
  }

  RunResult Run() {
    start_ = Clock::now();
    last_done_ = start_;
    end_ = start_ + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(o_.duration_s));
    if (o_.qps > 0)
      OpenLoop();
    else
      ClosedLoop();
    std::unique_lock<std::mutex> lock(mu_);
    while (inflight_ > 0) {
      cv_.wait_for(lock, std::chrono::seconds(1));
      ProgressLocked(false);
    }
    ProgressLocked(true);
    if (gave_up_)
      std::fprintf(stderr, "mixserve-loadgen: stopped early: the first %zu requests all failed\n",
                   errors_);
    RunResult r;
    r.records = std::move(records_);
    r.dispatched = dispatched_;
    r.dropped = dropped_;
    r.wall_s = Seconds(last_done_ - start_);
    return r;
  }

 private:
  // One call of one sentence to one target.
  struct Call {
    grpc::ClientContext ctx;
    pb::TranslateRequest req;
    pb::TranslateResponse resp;
    std::size_t sentence = 0;
    std::string label;  // forced variant label, or "" when routed
    Clock::time_point scheduled;
    std::shared_ptr<int> group_left;  // calls of the same sentence still running
  };

  // Whether another sentence may start now (bounds of count and duration). A run whose first
  // kGiveUpAfter requests all failed stops early: the server is down or rejects everything,
  // and a closed loop would otherwise spin through failures for the whole duration.
  static constexpr std::size_t kGiveUpAfter = 1000;
  bool MayDispatchLocked(Clock::time_point now) {
    if (errors_ >= kGiveUpAfter && errors_ == records_.size()) {
      gave_up_ = true;
      return false;
    }
    if (limit_ > 0 && offered_ >= limit_) return false;
    if (o_.duration_s > 0 && now >= end_) return false;
    return true;
  }

  // Sends sentence number `seq` (the test set repeats) to every target.
  void Dispatch(std::size_t seq, Clock::time_point scheduled) {
    const std::size_t sentence = seq % sources_.size();
    auto left = std::make_shared<int>(static_cast<int>(targets_));
    for (std::size_t t = 0; t < targets_; ++t) {
      auto* call = new Call;
      call->sentence = sentence;
      call->scheduled = scheduled;
      call->group_left = left;
      pb::TranslateRequest& req = call->req;
      req.set_text(sources_[sentence]);
      req.set_source_language(o_.source_language);
      req.set_target_language(o_.target_language);
      req.set_request_id("loadgen-" + std::to_string(seq) + "-" + std::to_string(t));
      if (!o_.variants.empty()) {
        call->label = o_.variants[t].label;
        req.mutable_variant()->set_name(o_.variants[t].name);
        req.mutable_variant()->set_version(o_.variants[t].version);
      }
      switch (o_.routing_key_mode) {
        case RoutingKeyMode::kNone: break;
        case RoutingKeyMode::kSentence: req.set_routing_key("s" + std::to_string(sentence)); break;
        case RoutingKeyMode::kRequest:
          req.set_routing_key("r" + std::to_string(o_.seed) + "-" + std::to_string(seq));
          break;
        case RoutingKeyMode::kFixed: req.set_routing_key(o_.fixed_routing_key); break;
      }
      if (o_.beam > 0) req.mutable_options()->set_beam_size(o_.beam);
      if (o_.max_tokens > 0) req.mutable_options()->set_max_output_tokens(o_.max_tokens);
      call->ctx.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(o_.deadline_ms));
      if (!o_.token.empty()) call->ctx.AddMetadata("authorization", "Bearer " + o_.token);
      auto& stub = stubs_[(seq * targets_ + t) % stubs_.size()];
      stub->async()->Translate(&call->ctx, &call->req, &call->resp,
                               [this, call](grpc::Status s) { OnDone(call, s); });
    }
  }

  void OnDone(Call* call, const grpc::Status& status) {
    const Clock::time_point now = Clock::now();
    Record r;
    r.sentence = call->sentence;
    r.status = status.error_code();
    r.latency_ms = Seconds(now - call->scheduled) * 1000.0;
    r.sent_s = Seconds(call->scheduled - start_);
    r.message = status.error_message();
    if (status.ok()) {
      const auto& v = call->resp.variant();
      r.served_by = v.name() + ":" + std::to_string(v.version());
      r.translation = call->resp.translation();
      r.input_tokens = call->resp.input_tokens();
      r.output_tokens = call->resp.output_tokens();
      r.server_queue_ms = call->resp.timings().queue_ms();
      r.server_total_ms = call->resp.timings().total_ms();
    }
    r.variant = !call->label.empty() ? call->label
                : status.ok()        ? r.served_by
                                     : std::string(kUnroutedLabel);
    bool next = false;
    std::size_t seq = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Only the first answer of a sentence after the warm-up counts for BLEU (report.h): the
      // text of later ones is dropped to keep long runs small.
      if (status.ok() &&
          (r.sent_s < o_.warmup_s || !answered_.emplace(r.variant, r.sentence).second))
        r.translation.clear();
      records_.push_back(std::move(r));
      if (!status.ok()) ++errors_;
      last_done_ = std::max(last_done_, now);
      // Closed loop: the slot of a finished sentence takes the next one. It is reserved
      // before this call leaves the in-flight count, so the count never touches 0 early.
      if (--*call->group_left == 0 && o_.qps <= 0 && MayDispatchLocked(now)) {
        next = true;
        seq = offered_++;
        ++dispatched_;
        inflight_ += targets_;
      }
    }
    // The call (and with it gRPC's references to the channel) is released before the call
    // leaves the in-flight count: once the count reaches 0 the caller may tear gRPC down.
    delete call;
    if (next) Dispatch(seq, Clock::now());
    std::lock_guard<std::mutex> lock(mu_);
    if (--inflight_ == 0) cv_.notify_all();
  }

  void ClosedLoop() {
    std::vector<std::size_t> first;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 0; i < o_.concurrency && MayDispatchLocked(start_); ++i) {
        first.push_back(offered_++);
        ++dispatched_;
        inflight_ += targets_;
      }
    }
    for (std::size_t seq : first) Dispatch(seq, Clock::now());
  }

  void OpenLoop() {
    PoissonSchedule schedule(o_.qps, o_.seed);
    for (;;) {
      const double t = schedule.Next();
      const Clock::time_point at =
          start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(t));
      std::size_t seq = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (!MayDispatchLocked(at)) break;
        // Sleep until the arrival; the in-flight limit is checked at that moment.
        while (Clock::now() < at) {
          cv_.wait_until(lock, std::min(at, Clock::now() + std::chrono::milliseconds(500)));
          ProgressLocked(false);
        }
        seq = offered_++;
        if (inflight_ + targets_ > static_cast<std::size_t>(o_.max_inflight)) {
          ++dropped_;
          continue;
        }
        ++dispatched_;
        inflight_ += targets_;
      }
      // Latency counts from the scheduled arrival, so a late send (client behind schedule)
      // shows up as latency instead of hiding it.
      Dispatch(seq, at);
    }
  }

  // On a terminal, a status line rewritten every second; otherwise only the final line.
  void ProgressLocked(bool final_line) {
    if (o_.quiet || (!final_line && !tty_)) return;
    const Clock::time_point now = Clock::now();
    if (!final_line && now - last_progress_ < std::chrono::seconds(1)) return;
    last_progress_ = now;
    const std::string dropped =
        o_.qps > 0 ? "  dropped " + std::to_string(dropped_) : std::string();
    std::fprintf(stderr, "%s[%6.1fs] sentences dispatched %zu  requests done %zu  in flight %zu"
                 "  failed %zu%s%s",
                 tty_ ? "\r" : "", Seconds(now - start_), dispatched_, records_.size(),
                 inflight_, errors_, dropped.c_str(), final_line ? "\n" : "");
    std::fflush(stderr);
  }

  const Options& o_;
  const std::vector<std::string>& sources_;
  std::vector<std::unique_ptr<pb::TranslationService::Stub>> stubs_;
  std::size_t targets_ = 1, limit_ = 0;
  const bool tty_ = isatty(2) != 0;
  Clock::time_point start_, end_, last_done_, last_progress_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Record> records_;
  std::set<std::pair<std::string, std::size_t>> answered_;  // (variant, sentence) with text kept
  std::size_t offered_ = 0, dispatched_ = 0, dropped_ = 0, inflight_ = 0, errors_ = 0;
  bool gave_up_ = false;
};

}  // namespace

RunResult RunLoad(const Options& options, const std::vector<std::string>& sources,
                  const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  Driver d(options, sources, channels);
  return d.Run();
}

}  // namespace mixserve::loadgen
