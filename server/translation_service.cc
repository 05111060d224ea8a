#include "server/translation_service.h"

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/support/slice.h>

#include <deque>
#include <mutex>
#include <vector>

#include "server/validation.h"
#include "text/sentences.h"

namespace mixserve {
namespace {

std::string BytesOf(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes;
}

grpc::ByteBuffer BufferOf(const google::protobuf::Message& message) {
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

// The request_id of a request that did not parse, when it can be read; "" otherwise.
static_assert(static_cast<int>(v1::TranslateRequest::kRequestIdFieldNumber) ==
              static_cast<int>(v1::TranslateBatchRequest::kRequestIdFieldNumber));
std::string WireRequestId(const std::string& bytes) {
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(bytes)) return "";
  std::string id;
  for (int i = 0; i < fields.field_count(); ++i) {
    const auto& f = fields.field(i);
    if (f.number() == v1::TranslateRequest::kRequestIdFieldNumber &&
        f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
      id = f.length_delimited();  // the last occurrence wins, as in a parse
  }
  return InvalidUtf8Offset(id) < 0 ? id : "";
}

// A unary call whose Finish may come from the scheduler thread or from OnCancel, whichever
// is first; the other is ignored. The state outlives the reactor (shared with callbacks).
struct UnaryState {
  std::mutex mu;
  bool finished = false;
  grpc::ServerUnaryReactor* reactor = nullptr;
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
};

class UnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  UnaryReactor() : state(std::make_shared<UnaryState>()) { state->reactor = this; }
  void OnCancel() override {
    auto s = state;  // `this` may be gone once Finish returns
    s->cancelled->store(true);
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->finished) return;
    s->finished = true;
    s->reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }
  void OnDone() override { delete this; }
  // Runs `fill` and finishes with `status` unless the call already finished.
  template <typename Fill>
  static void Complete(const std::shared_ptr<UnaryState>& s, const grpc::Status& status,
                       Fill fill) {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->finished) return;
    s->finished = true;
    if (status.ok()) fill();
    s->reactor->Finish(status);
  }
  std::shared_ptr<UnaryState> state;
};

TranslateCall CallFrom(const char* method, const grpc::CallbackServerContext* ctx,
                       const std::string& request_id, const std::string& source,
                       const std::string& target, const v1::VariantRef& variant,
                       const std::string& routing_key, const v1::DecodingOptions& options) {
  TranslateCall c;
  c.method = method;
  c.request_id = request_id.empty() ? Translator::NewRequestId() : request_id;
  c.source_language = source;
  c.target_language = target;
  c.variant = variant;
  c.routing_key = routing_key;
  c.options = options;
  c.deadline = Translator::SteadyDeadline(ctx->deadline());
  return c;
}

}  // namespace

grpc::Status CheckRate(RateLimiter* rate, const grpc::CallbackServerContext* ctx, double cost) {
  if (!rate || !rate->enabled()) return grpc::Status::OK;
  std::string peer = ctx->peer();
  if (rate->Allow(peer, cost)) return grpc::Status::OK;
  return {grpc::StatusCode::RESOURCE_EXHAUSTED,
          "rate limit exceeded for " + RateLimiter::ClientOf(peer)};
}

grpc::ServerUnaryReactor* TranslationServiceImpl::Translate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response) {
  auto* reactor = new UnaryReactor;
  auto state = reactor->state;
  v1::TranslateRequest parsed;
  const v1::TranslateRequest* request = &parsed;
  const std::string bytes = BytesOf(*request_bytes);
  grpc::Status check = ParseRequestBytes(bytes, &parsed);
  if (!check.ok()) parsed.set_request_id(WireRequestId(bytes));  // for the logs
  TranslateCall call = CallFrom("Translate", context, request->request_id(),
                                request->source_language(), request->target_language(),
                                request->variant(), request->routing_key(), request->options());
  call.cancelled = state->cancelled;
  call.texts.push_back(request->text());
  if (!request->reference().empty()) call.references.push_back(request->reference());
  if (check.ok()) check = CheckRequest(*request, limits_.Get());
  if (check.ok()) check = CheckRate(&rate_, context, 1);
  if (!check.ok()) {
    translator_->Reject(call, check);
    UnaryReactor::Complete(state, check, [] {});
    return reactor;
  }
  translator_->Run(std::move(call), [state, response](TranslateResult&& r) {
    UnaryReactor::Complete(state, r.status, [&] {
      v1::TranslateResponse out = std::move(r.translations.front());
      out.mutable_timings()->set_total_ms(r.total_ms);
      *response = BufferOf(out);
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* TranslationServiceImpl::TranslateBatch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response) {
  auto* reactor = new UnaryReactor;
  auto state = reactor->state;
  v1::TranslateBatchRequest parsed;
  const v1::TranslateBatchRequest* request = &parsed;
  const std::string bytes = BytesOf(*request_bytes);
  grpc::Status check = ParseRequestBytes(bytes, &parsed);
  if (!check.ok()) parsed.set_request_id(WireRequestId(bytes));  // for the logs
  TranslateCall call = CallFrom("TranslateBatch", context, request->request_id(),
                                request->source_language(), request->target_language(),
                                request->variant(), request->routing_key(), request->options());
  if (check.ok()) check = CheckBatchRequest(*request, limits_.Get());
  if (check.ok()) check = CheckRate(&rate_, context, request->texts_size());
  if (!check.ok()) {
    translator_->Reject(call, check);
    UnaryReactor::Complete(state, check, [] {});
    return reactor;
  }
  call.cancelled = state->cancelled;
  call.texts.assign(request->texts().begin(), request->texts().end());
  call.references.assign(request->references().begin(), request->references().end());
  std::string request_id = call.request_id;
  translator_->Run(std::move(call), [state, response, request_id](TranslateResult&& r) {
    UnaryReactor::Complete(state, r.status, [&] {
      v1::TranslateBatchResponse out;
      out.set_request_id(request_id);
      out.mutable_variant()->set_name(r.variant.name);
      out.mutable_variant()->set_version(r.variant.version);
      out.mutable_timings()->set_queue_ms(r.queue_ms);
      out.mutable_timings()->set_compute_ms(r.compute_ms);
      out.mutable_timings()->set_total_ms(r.total_ms);
      for (auto& t : r.translations) *out.add_translations() = std::move(t);
      *response = BufferOf(out);
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* TranslationServiceImpl::TranslateDocument(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response) {
  auto* reactor = new UnaryReactor;
  auto state = reactor->state;
  auto request = std::make_shared<v1::TranslateDocumentRequest>();
  const std::string bytes = BytesOf(*request_bytes);
  grpc::Status check = ParseRequestBytes(bytes, request.get());
  if (!check.ok()) request->set_request_id(WireRequestId(bytes));  // for the logs
  TranslateCall call = CallFrom("TranslateDocument", context, request->request_id(),
                                request->source_language(), request->target_language(),
                                request->variant(), request->routing_key(), request->options());
  const v1::LimitsConfig limits = limits_.Get();
  if (check.ok()) check = CheckDocumentRequest(*request, limits);
  auto spans = std::make_shared<std::vector<TextSpan>>();
  if (check.ok()) {
    try {
      *spans = SplitSentences(request->text(), translator_->SourceLanguage(call));
    } catch (const std::exception& e) {
      check = {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    }
  }
  if (check.ok() && spans->empty())
    check = {grpc::StatusCode::INVALID_ARGUMENT, "text holds no sentence"};
  if (check.ok() && limits.max_document_sentences() > 0 &&
      spans->size() > static_cast<size_t>(limits.max_document_sentences()))
    check = {grpc::StatusCode::INVALID_ARGUMENT,
             "text has " + std::to_string(spans->size()) + " sentences, above the limit of " +
                 std::to_string(limits.max_document_sentences()) +
                 " (limits.max_document_sentences)"};
  if (check.ok()) check = CheckRate(&rate_, context, static_cast<double>(spans->size()));
  if (!check.ok()) {
    translator_->Reject(call, check);
    UnaryReactor::Complete(state, check, [] {});
    return reactor;
  }
  call.cancelled = state->cancelled;
  call.wait_for_room = true;
  call.texts.reserve(spans->size());
  for (const auto& span : *spans) call.texts.push_back(request->text().substr(span.begin, span.size()));
  const std::string request_id = call.request_id;
  translator_->Run(std::move(call), [state, response, request, spans,
                                     request_id](TranslateResult&& r) {
    UnaryReactor::Complete(state, r.status, [&] {
      v1::TranslateDocumentResponse out;
      out.set_request_id(request_id);
      out.mutable_variant()->set_name(r.variant.name);
      out.mutable_variant()->set_version(r.variant.version);
      out.set_sentences(static_cast<int>(r.translations.size()));
      std::vector<std::string> translated;
      translated.reserve(r.translations.size());
      int input_tokens = 0, output_tokens = 0, split = 0;
      for (const auto& t : r.translations) {
        translated.push_back(t.translation());
        input_tokens += t.input_tokens();
        output_tokens += t.output_tokens();
        split += t.pieces() > 1;
      }
      std::vector<TextSpan> placed;
      out.set_translation(JoinSentences(request->text(), *spans, translated, &placed));
      out.set_input_tokens(input_tokens);
      out.set_output_tokens(output_tokens);
      out.set_split_sentences(split);
      out.mutable_timings()->set_queue_ms(r.queue_ms);
      out.mutable_timings()->set_compute_ms(r.compute_ms);
      out.mutable_timings()->set_total_ms(r.total_ms);
      if (request->return_segments()) {
        for (size_t i = 0; i < spans->size(); ++i) {
          auto* seg = out.add_segments();
          const auto& t = r.translations[i];
          seg->set_source_offset(static_cast<int>((*spans)[i].begin));
          seg->set_source_length(static_cast<int>((*spans)[i].size()));
          seg->set_translation_offset(static_cast<int>(placed[i].begin));
          seg->set_translation_length(static_cast<int>(placed[i].size()));
          seg->set_source(request->text().substr((*spans)[i].begin, (*spans)[i].size()));
          seg->set_translation(t.translation());
          seg->set_input_tokens(t.input_tokens());
          seg->set_output_tokens(t.output_tokens());
          seg->set_pieces(std::max(1, t.pieces()));
        }
      }
      *response = BufferOf(out);
    });
  });
  return reactor;
}

namespace {

// Each request message is translated on its own; answers are written one at a time in the
// order they complete. A failed message is answered with its status in the response and
// the stream goes on. Decisions are taken under the mutex, gRPC operations after it.
class StreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  struct Shared {
    std::mutex mu;
    StreamReactor* reactor = nullptr;
    bool finished = false;  // Finish called (or about to be)
    bool reads_done = false;
    bool writing = false;
    bool starting_read = false;  // NextRead is between its decision and StartRead
    int pending = 0;
    std::deque<grpc::ByteBuffer> out;  // serialized answers; front() is being written while `writing`
    std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  };
  enum class Act { kNone, kWrite, kFinish };

  StreamReactor(grpc::CallbackServerContext* ctx, Translator* t, const v1::LimitsConfig& limits,
                RateLimiter* rate)
      : ctx_(ctx), translator_(t), limits_(limits), rate_(rate),
        shared_(std::make_shared<Shared>()) {
    shared_->reactor = this;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    auto s = shared_;
    if (!ok) {
      Act act;
      {
        std::lock_guard<std::mutex> lock(s->mu);
        s->reads_done = true;
        act = NextLocked(*s);
      }
      Do(s, act);
      return;
    }
    std::string bytes = BytesOf(request_);
    {
      std::lock_guard<std::mutex> lock(s->mu);
      ++s->pending;
    }
    request_.Clear();
    v1::TranslateRequest req;
    grpc::Status check = ParseRequestBytes(bytes, &req);
    if (!check.ok()) req.set_request_id(WireRequestId(bytes));
    std::string request_id =
        req.request_id().empty() ? Translator::NewRequestId() : req.request_id();
    TranslateCall call = CallFrom("TranslateStream", ctx_, request_id, req.source_language(),
                                  req.target_language(), req.variant(), req.routing_key(),
                                  req.options());
    call.cancelled = s->cancelled;
    call.texts.push_back(req.text());
    if (!req.reference().empty()) call.references.push_back(req.reference());
    if (check.ok()) check = CheckRequest(req, limits_);
    if (check.ok()) check = CheckRate(rate_, ctx_, 1);
    if (!check.ok()) {
      translator_->Reject(call, check);
      Deliver(s, ErrorResponse(request_id, check));
      NextRead(s);
      return;
    }
    // Flow control: the next message is read once this one is queued (at once when its
    // variant's queue has room; when it is full, once room appears).
    call.wait_for_room = true;
    call.queued = std::make_shared<QueuedSignal>([s] { NextRead(s); });
    translator_->Run(std::move(call), [s, request_id](TranslateResult&& r) {
      if (!r.status.ok()) return Deliver(s, ErrorResponse(request_id, r.status));
      v1::TranslateResponse resp = std::move(r.translations.front());
      resp.mutable_timings()->set_total_ms(r.total_ms);
      Deliver(s, std::move(resp));
    });
  }

  void OnWriteDone(bool ok) override {
    auto s = shared_;
    Act act;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      s->writing = false;
      if (!s->out.empty()) s->out.pop_front();
      if (!ok) s->cancelled->store(true);
      act = NextLocked(*s);
    }
    Do(s, act);
  }

  void OnCancel() override {
    auto s = shared_;
    s->cancelled->store(true);
    Act act;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      act = NextLocked(*s);
    }
    Do(s, act);
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->reactor = nullptr;
    }
    delete this;
  }

 private:
  // Starts the next read unless the stream is finishing. The reactor stays alive during
  // StartRead: `starting_read` keeps NextLocked from finishing the stream meanwhile.
  static void NextRead(const std::shared_ptr<Shared>& s) {
    StreamReactor* r;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (s->finished || !s->reactor || s->reads_done) return;
      s->starting_read = true;
      r = s->reactor;
    }
    r->StartRead(&r->request_);
    Act act;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      s->starting_read = false;
      act = NextLocked(*s);
    }
    Do(s, act);
  }

  static v1::TranslateResponse ErrorResponse(const std::string& id, const grpc::Status& st) {
    v1::TranslateResponse r;
    r.set_request_id(id);
    r.set_status_code(static_cast<int>(st.error_code()));
    r.set_status_message(st.error_message());
    return r;
  }

  static void Deliver(const std::shared_ptr<Shared>& s, v1::TranslateResponse&& resp) {
    Act act;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      --s->pending;
      if (!s->finished && !s->cancelled->load()) s->out.push_back(BufferOf(resp));
      act = NextLocked(*s);
    }
    Do(s, act);
  }

  // What to do next, with the mutex held: write the next answer, finish, or nothing.
  static Act NextLocked(Shared& s) {
    if (s.finished || s.writing || !s.reactor || s.starting_read) return Act::kNone;
    bool cancelled = s.cancelled->load();
    if (!cancelled && !s.out.empty()) {
      s.writing = true;
      return Act::kWrite;
    }
    if (cancelled || (s.reads_done && s.pending == 0 && s.out.empty())) {
      s.finished = true;
      return Act::kFinish;
    }
    return Act::kNone;
  }

  // The reactor stays alive here: it is deleted only after Finish, and Finish is issued
  // only once, by the one caller that took the kFinish decision.
  static void Do(const std::shared_ptr<Shared>& s, Act act) {
    if (act == Act::kWrite) {
      StreamReactor* r;
      const grpc::ByteBuffer* msg;
      {
        std::lock_guard<std::mutex> lock(s->mu);
        r = s->reactor;
        msg = &s->out.front();
      }
      r->StartWrite(msg);
    } else if (act == Act::kFinish) {
      StreamReactor* r;
      {
        std::lock_guard<std::mutex> lock(s->mu);
        r = s->reactor;
      }
      r->Finish(s->cancelled->load()
                    ? grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client")
                    : grpc::Status::OK);
    }
  }

  grpc::CallbackServerContext* ctx_;
  Translator* translator_;
  v1::LimitsConfig limits_;
  RateLimiter* rate_;
  std::shared_ptr<Shared> shared_;
  grpc::ByteBuffer request_;
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
TranslationServiceImpl::TranslateStream(grpc::CallbackServerContext* context) {
  return new StreamReactor(context, translator_, limits_.Get(), &rate_);
}

}  // namespace mixserve
