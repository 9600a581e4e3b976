// segments-server: reads the configuration, starts the application, and
// drains it on SIGTERM or SIGINT.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "app/application.h"
#include "common/log.h"
#include "config/config.h"

namespace {

segments::log::Level LevelOf(const std::string& name) {
  if (name == "debug") return segments::log::Level::kDebug;
  if (name == "warning") return segments::log::Level::kWarning;
  if (name == "error") return segments::log::Level::kError;
  return segments::log::Level::kInfo;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& arg : args) {
    if (arg == "--help" || arg == "-h") {
      std::fputs(segments::config::Usage().c_str(), stdout);
      return 0;
    }
  }
  auto config = segments::config::LoadConfig(args, segments::config::ProcessEnvironment());
  if (!config.ok()) {
    std::fprintf(stderr, "segments-server: %s\n\n%s", std::string(config.status().message()).c_str(),
                 segments::config::Usage().c_str());
    return 2;
  }
  segments::log::SetMinLevel(LevelOf(config->log_level));
  segments::log::SetFormat(config->log_format == "json" ? segments::log::Format::kJson : segments::log::Format::kText);

  // Block the stop signals in every thread, then wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  static const segments::domain::SystemClock clock;
  auto app = segments::app::Application::Start(*config, clock);
  if (!app.ok()) {
    segments::log::Error("cannot start: {}", std::string(app.status().message()));
    return 1;
  }
  int signal = 0;
  sigwait(&stop_signals, &signal);
  segments::log::Info("received signal {}", signal);
  (*app)->Shutdown(config->shutdown_grace);
  return 0;
}
