// laserctl watch's stderr display (watch_display.h).
#include "client/watch_display.h"

#include <unistd.h>

#include <iostream>

namespace laserd::client {

namespace pb = ::laser::v1;

WatchDisplay::WatchDisplay(bool enabled, int best_rows)
    : enabled_(enabled), tty_(isatty(2)), best_(static_cast<size_t>(best_rows)) {}

void WatchDisplay::Progress(const pb::Progress& p) {
  progress_ = p;
  have_progress_ = true;
  if (!enabled_) return;
  if (tty_) {
    Redraw();
  } else {
    const int decile = static_cast<int>(p.fraction() * 10);
    auto now = std::chrono::steady_clock::now();
    if (decile != last_decile_ || now - last_line_ > std::chrono::seconds(30)) {
      last_decile_ = decile;
      last_line_ = now;
      std::cerr << ProgressLine(p) << "\n";
    }
  }
}

void WatchDisplay::Result(const pb::Result& r) {
  const bool changed = best_.Add(r);
  if (!enabled_) return;
  if (tty_) {
    Redraw();
  } else if (changed && best_.rows().front().index() == r.index()) {
    std::cerr << "best so far: " << TableRow(r) << "\n";
  }
}

void WatchDisplay::Note(const std::string& line) {
  if (!enabled_) return;
  Clear();
  std::cerr << line << "\n";
  drawn_ = 0;
  if (tty_) Redraw();
}

void WatchDisplay::BeforeOutput() {
  if (enabled_ && tty_) {
    Clear();
    std::cerr.flush();
  }
}

void WatchDisplay::Finish() {
  if (enabled_ && tty_) std::cerr.flush();
}

void WatchDisplay::Clear() {
  if (tty_ && drawn_ > 0) std::cerr << "\x1b[" << drawn_ << "F\x1b[J";
  drawn_ = 0;
}

void WatchDisplay::Redraw() {
  Clear();
  int lines = 0;
  if (have_progress_) {
    std::cerr << ProgressBar(progress_) << "\n";
    ++lines;
  }
  if (!best_.rows().empty()) {
    std::cerr << "best so far:\n" << TableHeader() << "\n";
    lines += 2;
    for (const auto& r : best_.rows()) {
      std::cerr << TableRow(r) << "\n";
      ++lines;
    }
  }
  std::cerr.flush();
  drawn_ = lines;
}

}  // namespace laserd::client
