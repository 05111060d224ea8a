// Linked into every test binary: on SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT, print the
// signal and a stack trace on stderr before dying, so that a crash in CI or on another
// machine names where it happened. Only async-signal-safe calls after the handler starts.
#include <dlfcn.h>
#include <execinfo.h>
#include <stdint.h>
#include <stdio.h>
#include <ucontext.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

namespace {

// "<what> <module>+0x<offset> (<symbol>)" for one code address (dladdr is not formally
// async-signal-safe but is fine in a process that is about to die).
void PrintAddress(const char* what, void* addr) {
  Dl_info info;
  char line[512];
  int n;
  if (addr && dladdr(addr, &info) && info.dli_fname)
    n = snprintf(line, sizeof line, "%s %p = %s+0x%lx (%s)\n", what, addr, info.dli_fname,
                 (unsigned long)((uintptr_t)addr - (uintptr_t)info.dli_fbase),
                 info.dli_sname ? info.dli_sname : "?");
  else
    n = snprintf(line, sizeof line, "%s %p\n", what, addr);
  if (n > 0) (void)!write(STDERR_FILENO, line, n < (int)sizeof line ? n : (int)sizeof line - 1);
}

void OnFatalSignal(int sig, siginfo_t* si, void* context) {
  const char* name = strsignal(sig);
  (void)!write(STDERR_FILENO, "\n*** fatal signal: ", 19);
  (void)!write(STDERR_FILENO, name, strlen(name));
  (void)!write(STDERR_FILENO, "; stack trace:\n", 15);
  PrintAddress("fault address", si ? si->si_addr : nullptr);
#if defined(__x86_64__)
  // The faulting instruction, and the word on top of the stack (the caller when the fault
  // is a call through a bad pointer, where backtrace() cannot unwind).
  const auto* uc = static_cast<const ucontext_t*>(context);
  PrintAddress("instruction  ", reinterpret_cast<void*>(uc->uc_mcontext.gregs[REG_RIP]));
  PrintAddress("stack top    ", *reinterpret_cast<void* const*>(uc->uc_mcontext.gregs[REG_RSP]));
#else
  (void)context;
#endif
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}

struct Installer {
  Installer() {
    // Load libgcc's unwinder now: backtrace() may allocate the first time it runs.
    void* warm[1];
    backtrace(warm, 1);
    const int signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (int sig : signals) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_sigaction = OnFatalSignal;
      sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
      sigaction(sig, &sa, nullptr);
    }
  }
} installer;

}  // namespace
