#include "clients/cli/translate_lines.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/utf8.h"
#include "clients/cli/output.h"

namespace mixserve::cli {
namespace {

using Clock = std::chrono::steady_clock;
using Request = v1::TranslateRequest;
using Response = v1::TranslateResponse;

constexpr int kInvalidArgument = 3;
constexpr int kDeadlineExceeded = 4;
constexpr int kUnavailable = 14;
const std::string kIdPrefix = "line-";

// Where a line stands. kWaiting: read (or to be sent again at once), not on the wire.
enum class State { kWaiting, kInFlight, kBackoff, kDone, kFailed, kBlank };

struct Line {
  std::string text;
  State state = State::kWaiting;
  bool started = false;        // sent at least once; `deadline` is set
  Clock::time_point deadline;  // first send + line_deadline
  int attempts = 0;
  int retries = 0;  // retryable refusals so far
  Response answer;  // the translation, or the failure (status_code, status_message)
};

bool IsBlank(const std::string& s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

std::string Millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

// One TranslateStream call: a reader thread takes the answers, a writer thread sends the
// requests queued in `outbox`, so that the worker never blocks on the network.
struct Stream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriterInterface<Request, Response>> rw;
  // Guarded by the translator's mutex.
  std::deque<Request> outbox;
  std::set<long> in_flight;  // line numbers sent on this stream and not answered
  bool finish = false;       // everything answered: the writer half-closes the stream
  bool exit = false;         // tear-down: the writer stops
  bool ended = false;        // the reader saw the end of the stream
  bool cancelled = false;    // cancelled here (a line passed its deadline, or the run stopped)
  std::thread reader, writer;
};

}  // namespace

struct LineTranslator::Impl {
  explicit Impl(LineOptions options) : o(std::move(options)), backoff(o.retry) {}

  LineOptions o;
  Backoff backoff;  // guarded by mu
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Line> lines;  // lines[i] is line first + i: read and not yet printed
  long first = 1;
  bool eof = false;        // the input thread reads no more
  bool stop = false;       // the run stopped (stop_line, stop_reason)
  long stop_line = 0;
  std::string stop_reason;
  std::set<long> ready;                          // to send, lowest line number first
  std::multimap<Clock::time_point, long> waits;  // lines in backoff, by due time
  int in_flight = 0;
  std::unique_ptr<Stream> stream;
  long read = 0;    // lines read
  long failed = 0;  // lines not translated
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;

  Line& At(long n) { return lines[static_cast<size_t>(n - first)]; }
  size_t MaxAhead() const { return static_cast<size_t>(std::max(4 * o.window, 256)); }

  void Fail(long n, int code, const std::string& message) {
    Line& ln = At(n);
    ln.state = State::kFailed;
    ln.answer.Clear();
    ln.answer.set_request_id(kIdPrefix + std::to_string(n));
    ln.answer.set_status_code(code);
    ln.answer.set_status_message(message);
    ++failed;
  }

  // Everything not finished fails with the reason; no more lines are read or sent.
  void Stop(long n, int code, const std::string& reason) {
    stop = true;
    stop_line = n;
    stop_reason = StatusCodeName(code) + ": " + reason;
    for (size_t i = 0; i < lines.size(); ++i) {
      const State s = lines[i].state;
      if (s == State::kWaiting || s == State::kInFlight || s == State::kBackoff)
        Fail(first + static_cast<long>(i), code,
             "not translated: the run stopped at line " + std::to_string(n));
    }
    ready.clear();
    waits.clear();
    in_flight = 0;
    if (stream) {
      stream->in_flight.clear();
      stream->cancelled = true;
      stream->ctx.TryCancel();
    }
    cv.notify_all();
  }

  // A retryable refusal: back off, or give up when the backoff would end past the deadline.
  void Refused(long n, int code, const std::string& message) {
    Line& ln = At(n);
    ++ln.retries;
    const auto delay = backoff.Delay(ln.retries);
    const auto due = Clock::now() + delay;
    if (due >= ln.deadline) {
      const std::string why = message + " (" + std::to_string(ln.attempts) +
                              " attempts within the line's deadline of " +
                              Millis(o.line_deadline) + ")";
      Fail(n, code, why);
      Stop(n, code, why);
      return;
    }
    ln.state = State::kBackoff;
    waits.emplace(due, n);
  }

  void OnAnswer(Stream* s, Response&& r) {
    const std::string& id = r.request_id();
    if (id.compare(0, kIdPrefix.size(), kIdPrefix) != 0) return;
    long n = 0;
    try {
      n = std::stol(id.substr(kIdPrefix.size()));
    } catch (...) {
      return;
    }
    if (!s->in_flight.erase(n)) return;  // not ours, or given up already
    --in_flight;
    Line& ln = At(n);
    if (r.status_code() == 0) {
      ln.answer = std::move(r);
      ln.state = State::kDone;
    } else if (IsRetryable(r.status_code())) {
      Refused(n, r.status_code(), r.status_message());
    } else {
      Fail(n, r.status_code(), r.status_message());
    }
  }

  void OpenStream() {
    stream = std::make_unique<Stream>();
    Stream* s = stream.get();
    for (const auto& [k, v] : o.metadata) s->ctx.AddMetadata(k, v);
    // The headers go with the first request (in the writer thread): opening the stream does
    // not wait for the connection with the mutex held.
    s->ctx.set_initial_metadata_corked(true);
    s->rw = o.stub->TranslateStream(&s->ctx);
    s->reader = std::thread([this, s] {
      Response r;
      while (s->rw->Read(&r)) {
        std::lock_guard<std::mutex> lock(mu);
        OnAnswer(s, std::move(r));
        cv.notify_all();
      }
      std::lock_guard<std::mutex> lock(mu);
      s->ended = true;
      cv.notify_all();
    });
    s->writer = std::thread([this, s] {
      std::unique_lock<std::mutex> lock(mu);
      bool broken = false;
      while (true) {
        cv.wait(lock, [&] { return s->exit || s->finish || (!broken && !s->outbox.empty()); });
        if (s->exit) return;
        if (!broken && !s->outbox.empty()) {
          Request req = std::move(s->outbox.front());
          s->outbox.pop_front();
          lock.unlock();
          const bool ok = s->rw->Write(req);
          lock.lock();
          broken = broken || !ok;  // the reader sees the end of the stream and its status
          continue;
        }
        if (s->finish) {
          lock.unlock();
          if (!broken) s->rw->WritesDone();
          return;
        }
      }
    });
  }

  // Joins the stream's threads and takes its status (the mutex is released meanwhile); its
  // unanswered lines are sent again, backed off, or failed.
  void TearDown(std::unique_lock<std::mutex>& lock) {
    std::unique_ptr<Stream> s = std::move(stream);
    s->exit = true;
    cv.notify_all();
    lock.unlock();
    s->reader.join();
    s->writer.join();
    const grpc::Status status = s->rw->Finish();
    lock.lock();
    const auto now = Clock::now();
    for (long n : s->in_flight) {
      Line& ln = At(n);
      if (ln.state != State::kInFlight) continue;  // failed meanwhile (the run stopped)
      --in_flight;
      if (ln.deadline <= now) {
        Fail(n, kDeadlineExceeded,
             "no answer within the line's deadline of " + Millis(o.line_deadline) + " (" +
                 std::to_string(ln.attempts) + " attempts)");
      } else if (s->cancelled) {
        ln.state = State::kWaiting;  // cancelled here with the stream: send again at once
        ready.insert(n);
      } else if (status.ok() || IsRetryable(status.error_code())) {
        Refused(n, status.ok() ? kUnavailable : status.error_code(),
                status.ok() ? "the stream ended without answering the line"
                            : "stream: " + status.error_message());
        if (stop) break;
      } else {
        Fail(n, status.error_code(), "stream: " + status.error_message());
      }
    }
  }

  void Send(long n) {
    if (!stream) OpenStream();
    Line& ln = At(n);
    if (!ln.started) {
      ln.started = true;
      ln.deadline = Clock::now() + o.line_deadline;
    }
    ++ln.attempts;
    Request req = o.base;
    req.set_text(ln.text);
    req.set_request_id(kIdPrefix + std::to_string(n));
    stream->outbox.push_back(std::move(req));
    stream->in_flight.insert(n);
    ln.state = State::kInFlight;
    ++in_flight;
  }

  // Prints the finished lines at the head of the input, in order.
  void Flush() {
    bool printed = false;
    while (!lines.empty()) {
      Line& ln = lines.front();
      if (ln.state == State::kDone) {
        PrintTranslation(ln.answer, o.json, *out);
      } else if (ln.state == State::kBlank) {
        *out << "\n";
      } else if (ln.state == State::kFailed) {
        *err << "mixserve-cli: line " << first << ": "
             << StatusCodeName(ln.answer.status_code()) << ": " << ln.answer.status_message()
             << "\n";
        *out << (o.json ? ToJson(ln.answer) : "") << "\n";
      } else {
        break;
      }
      lines.pop_front();
      ++first;
      printed = true;
    }
    if (printed) {
      out->flush();
      cv.notify_all();
    }
  }

  void Work() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      auto now = Clock::now();
      while (!waits.empty() && waits.begin()->first <= now) {
        const long n = waits.begin()->second;
        waits.erase(waits.begin());
        At(n).state = State::kWaiting;
        ready.insert(n);
      }
      if (stream && stream->ended) {
        TearDown(lock);
        continue;
      }
      if (stream && !stream->cancelled) {
        for (long n : stream->in_flight) {
          if (At(n).deadline <= now) {  // the stream is cancelled; the other lines go again
            stream->cancelled = true;
            stream->ctx.TryCancel();
            break;
          }
        }
      }
      while (!stop && !ready.empty() &&
             in_flight + static_cast<int>(waits.size()) < o.window &&
             !(stream && stream->cancelled)) {
        const long n = *ready.begin();
        ready.erase(ready.begin());
        Send(n);
        cv.notify_all();
      }
      Flush();
      if (eof && lines.empty()) break;
      auto next = Clock::time_point::max();
      if (!waits.empty()) next = waits.begin()->first;
      if (stream && !stream->cancelled)
        for (long n : stream->in_flight) next = std::min(next, At(n).deadline);
      if (next == Clock::time_point::max())
        cv.wait(lock);
      else
        cv.wait_until(lock, next);
    }
    if (!stream) return;
    // Every line is answered: half-close, and let the server end the stream (a few seconds
    // at most: it has nothing left to answer).
    stream->finish = true;
    cv.notify_all();
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return stream->ended; }))
      stream->ctx.TryCancel();
    std::unique_ptr<Stream> s = std::move(stream);
    s->exit = true;
    cv.notify_all();
    lock.unlock();
    s->reader.join();
    s->writer.join();
    (void)s->rw->Finish();
  }
};

LineTranslator::LineTranslator(LineOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  if (impl_->o.window < 1) impl_->o.window = 1;
}

LineTranslator::~LineTranslator() = default;

int LineTranslator::Run(std::istream& in, std::ostream& out, std::ostream& err) {
  Impl& m = *impl_;
  m.out = &out;
  m.err = &err;
  std::thread worker([&m] { m.Work(); });
  std::string text;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(m.mu);
      m.cv.wait(lock, [&] { return m.stop || m.lines.size() < m.MaxAhead(); });
      if (m.stop) break;
    }
    if (!std::getline(in, text)) break;
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.stop) break;
    const long n = m.first + static_cast<long>(m.lines.size());
    Line ln;
    ln.text = std::move(text);
    ++m.read;
    const long bad = InvalidUtf8Offset(ln.text);
    const bool blank = IsBlank(ln.text);
    if (blank) ln.state = State::kBlank;
    m.lines.push_back(std::move(ln));
    if (bad >= 0) {
      m.Fail(n, kInvalidArgument,
             "text is not valid UTF-8 (byte offset " + std::to_string(bad) + "); not sent");
    } else if (!blank) {
      m.ready.insert(n);
    }
    m.cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.eof = true;
    m.cv.notify_all();
  }
  worker.join();
  if (m.stop) {
    err << "mixserve-cli: stopped at line " << m.stop_line << ": " << m.stop_reason
        << "; the input after line " << m.first - 1 << " was not translated\n";
    return 1;
  }
  if (m.failed > 0) {
    err << "mixserve-cli: " << m.failed << " of " << m.read
        << " lines not translated (listed above)\n";
    return 1;
  }
  return 0;
}

}  // namespace mixserve::cli
