// What `laserctl watch` shows on stderr while results stream to stdout: on a
// terminal, a block (progress bar and best-so-far table) redrawn in place;
// otherwise plain lines (progress at each tenth or every 30 s, a new best).
#ifndef LASERD_CLIENT_WATCH_DISPLAY_H_
#define LASERD_CLIENT_WATCH_DISPLAY_H_

#include <chrono>
#include <string>

#include "client/laserctl_core.h"
#include "laser/v1/sweep.pb.h"

namespace laserd::client {

class WatchDisplay {
 public:
  // `enabled` false: nothing is shown. `best_rows`: rows of the best-so-far table.
  WatchDisplay(bool enabled, int best_rows);

  void Progress(const ::laser::v1::Progress& p);
  void Result(const ::laser::v1::Result& r);
  // A line of its own (state changes, reconnects).
  void Note(const std::string& line);
  // Before a line goes to stdout: on a terminal the block is erased first (stdout and
  // stderr usually share it), and the next Result() redraws it below the line.
  void BeforeOutput();
  void Finish();

 private:
  void Clear();
  void Redraw();

  bool enabled_;
  bool tty_;
  BestTable best_;
  ::laser::v1::Progress progress_;
  bool have_progress_ = false;
  int drawn_ = 0;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point last_line_{};
};

}  // namespace laserd::client

#endif  // LASERD_CLIENT_WATCH_DISPLAY_H_
