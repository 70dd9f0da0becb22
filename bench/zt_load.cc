// zt-load: the small load tool of the end-to-end benchmarks. One binary,
// a server and the client modes, over plain blocking sockets and threads
// (it measures ztunnel; it is not proxy code).
//
//   zt-load serve --listen 127.0.2.10:8080
//   zt-load throughput --to 127.10.0.10:80 [--socks 127.0.1.10:15080] --streams 8 --seconds 5
//   zt-load cps --to ... [--socks ...] --seconds 5 [--concurrency 16]
//   zt-load latency --to ... [--socks ...] --count 2000      # 1 KiB ping-pong
//   zt-load hold --to ... [--socks ...] --conns 1000         # open, echo 1 byte each, wait for stdin EOF
//   zt-load burst --to ... [--socks ...] --conns 10000 --concurrency 16 --seconds 30 [--end fin|reset]
//                                                            # open + 1-byte echo + close, N in all
//                                                            # (--end reset: RST instead of FIN)
//
// With --socks SRC:PORT each connection goes through that SOCKS5 listener
// from source address SRC (the workload ztunnel will recognise), asking for
// --to by address; --socks-spread N rotates the source over N consecutive
// addresses from SRC (each its own SOCKS5 listener, e.g. N workloads of one
// node), so that a client ztunnel keys each connection to its own pool entry.
// --seconds takes fractions (0.3). Every result is one line of `key=value`
// pairs on stdout.
//
// Protocol with the server: the client's first byte picks the mode. 'S':
// sink, the server reads to EOF and answers the 8-byte count it read; 'E':
// echo everything back until EOF. A PROXY protocol v2 header in front (a
// ztunnel serving a workload with applicationTunnel PROXY) is skipped.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Addr {
  sockaddr_in sa{};
  static std::optional<Addr> parse(const std::string& text) {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    Addr a;
    a.sa.sin_family = AF_INET;
    a.sa.sin_port = htons(uint16_t(std::atoi(text.c_str() + colon + 1)));
    if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &a.sa.sin_addr) != 1) return std::nullopt;
    return a;
  }
};

struct Options {
  std::string mode;
  std::optional<Addr> listen, to, socks;
  int streams = 1, count = 2000, conns = 1000, concurrency = 1, socks_spread = 1;
  double seconds = 5;
  bool end_with_reset = false;  // --end reset: each connection ends with RST (SO_LINGER 0), mid-stream
};

Clock::duration seconds_of(const Options& opt) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.seconds));
}

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "zt-load: %s\n", why.c_str());
  std::exit(1);
}

bool send_all(int fd, const void* data, size_t n) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

bool recv_exact(int fd, void* out, size_t n) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

// The first failure's reason, for the result line (a run with failures is
// thrown away, but why it failed matters: ports running out looks the same
// as a proxy refusing).
std::mutex first_error_mutex;
std::string first_error;
void note_error(const char* step) {
  const std::string why = std::string(step) + ": " + (errno ? std::strerror(errno) : "closed");
  std::lock_guard lock(first_error_mutex);
  if (first_error.empty()) first_error = why;
}
std::string error_field() {
  std::lock_guard lock(first_error_mutex);
  if (first_error.empty()) return "";
  std::string quoted = first_error;
  std::replace(quoted.begin(), quoted.end(), ' ', '_');
  return " first_error=" + quoted;
}

// A connection to opt.to, directly or through SOCKS5; -1 on failure (the
// reason noted).
int open_conn(const Options& opt) {
  static std::atomic<uint32_t> opened = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (opt.socks) {
    sockaddr_in socks = opt.socks->sa;
    const uint32_t offset = opened++ % uint32_t(std::max(1, opt.socks_spread));
    socks.sin_addr.s_addr = htonl(ntohl(socks.sin_addr.s_addr) + offset);
    sockaddr_in src = socks;
    src.sin_port = 0;
    // The port is picked at connect, per destination: a bind to port 0
    // alone reserves a port for every destination and runs out after ~28k
    // connections (TIME_WAIT included).
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof(src)) != 0) return note_error("bind"), close(fd), -1;
    if (connect(fd, reinterpret_cast<const sockaddr*>(&socks), sizeof(socks)) != 0) {
      return note_error("connect to SOCKS5"), close(fd), -1;
    }
    uint8_t req[3 + 10] = {5, 1, 0, 5, 1, 0, 1};
    std::memcpy(req + 7, &opt.to->sa.sin_addr, 4);
    std::memcpy(req + 11, &opt.to->sa.sin_port, 2);
    uint8_t reply[2 + 10];
    errno = 0;
    if (!send_all(fd, req, sizeof(req)) || !recv_exact(fd, reply, sizeof(reply))) return note_error("SOCKS5"), close(fd), -1;
    if (reply[3] != 0) return errno = 0, note_error("SOCKS5 refused"), close(fd), -1;
    return fd;
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&opt.to->sa), sizeof(opt.to->sa)) != 0) {
    return note_error("connect"), close(fd), -1;
  }
  return fd;
}

// --- server ---

// Reads the mode byte, first skipping a PROXY protocol v2 header if one
// comes (its 12-byte signature starts with '\r', never a mode byte).
bool read_mode(int fd, char& mode) {
  if (!recv_exact(fd, &mode, 1)) return false;
  if (mode != '\r') return true;
  uint8_t rest[15];  // the signature's other 11 bytes, version, family, length
  if (!recv_exact(fd, rest, sizeof(rest))) return false;
  std::vector<char> skip(size_t(rest[13]) << 8 | rest[14]);
  return recv_exact(fd, skip.data(), skip.size()) && recv_exact(fd, &mode, 1);
}

void serve_one(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::vector<char> buf(256 * 1024);
  char mode = 0;
  if (!read_mode(fd, mode)) return (void)close(fd);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    total += uint64_t(n);
    if (mode == 'E' && !send_all(fd, buf.data(), size_t(n))) break;
  }
  if (mode == 'S') send_all(fd, &total, sizeof(total));
  shutdown(fd, SHUT_WR);
  close(fd);
}

int serve(const Options& opt) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(l, reinterpret_cast<const sockaddr*>(&opt.listen->sa), sizeof(opt.listen->sa)) != 0 || listen(l, 4096) != 0) {
    die(std::string("cannot listen: ") + std::strerror(errno));
  }
  std::printf("listening\n");
  std::fflush(stdout);
  for (;;) {
    int c = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::thread(serve_one, c).detach();
  }
}

// --- clients ---

int throughput(const Options& opt) {
  std::atomic<uint64_t> total = 0;
  std::atomic<int> failed = 0;
  const auto start = Clock::now(), until = start + seconds_of(opt);
  std::vector<std::thread> threads;
  for (int i = 0; i < opt.streams; ++i) {
    threads.emplace_back([&] {
      int fd = open_conn(opt);
      if (fd < 0) return (void)++failed;
      std::vector<char> chunk(256 * 1024, 'x');
      chunk[0] = 'S';
      bool ok = send_all(fd, chunk.data(), chunk.size());
      while (ok && Clock::now() < until) ok = send_all(fd, chunk.data(), chunk.size());
      shutdown(fd, SHUT_WR);
      uint64_t got = 0;
      if (ok && recv_exact(fd, &got, sizeof(got))) total += got;
      else ++failed;
      close(fd);
    });
  }
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("mode=throughput streams=%d seconds=%.2f bytes=%llu gbit_per_s=%.3f failed=%d\n", opt.streams, secs,
              static_cast<unsigned long long>(total.load()), double(total.load()) * 8 / secs / 1e9, failed.load());
  return failed ? 1 : 0;
}

// New connection + 1-byte echo + close, on opt.concurrency threads, until
// --seconds pass or (with a limit) `limit` connections were started.
int connect_loop(const Options& opt, const char* mode, std::optional<uint64_t> limit) {
  std::atomic<uint64_t> done = 0, started = 0;
  std::atomic<int> failed = 0;
  const auto start = Clock::now(), until = start + seconds_of(opt);
  std::vector<std::thread> threads;
  for (int i = 0; i < opt.concurrency; ++i) {
    threads.emplace_back([&] {
      while (Clock::now() < until && (!limit || started++ < *limit)) {
        int fd = open_conn(opt);
        const char msg[2] = {'E', 'x'};
        char back = 0;
        errno = 0;
        bool ok = fd >= 0 && send_all(fd, msg, 2) && recv_exact(fd, &back, 1) && back == 'x';
        if (fd >= 0 && !ok) note_error("echo");
        if (fd >= 0 && ok && opt.end_with_reset) {
          // The echo flowed; now a reset instead of a FIN, with the
          // connection open both ways through the proxies.
          const char more = 'y';
          send_all(fd, &more, 1);
          linger lin{1, 0};
          setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
        }
        if (fd >= 0) close(fd);
        ok ? ++done : ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("mode=%s concurrency=%d seconds=%.2f connections=%llu per_s=%.0f failed=%d%s\n", mode, opt.concurrency,
              secs, static_cast<unsigned long long>(done.load()), double(done.load()) / secs, failed.load(),
              error_field().c_str());
  return failed ? 1 : 0;
}

int latency(const Options& opt) {
  int fd = open_conn(opt);
  if (fd < 0) die("cannot connect");
  std::vector<char> msg(1024, 'p'), back(1024);
  const char mode = 'E';
  send_all(fd, &mode, 1);
  std::vector<double> us;
  for (int i = 0; i < opt.count; ++i) {
    auto t0 = Clock::now();
    if (!send_all(fd, msg.data(), msg.size()) || !recv_exact(fd, back.data(), back.size())) die("connection lost");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  close(fd);
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[std::min(us.size() - 1, size_t(p * double(us.size())))]; };
  std::printf("mode=latency count=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f\n", opt.count, pct(0.5), pct(0.9), pct(0.99));
  return 0;
}

int hold(const Options& opt) {
  std::vector<int> fds;
  int failed = 0;
  for (int i = 0; i < opt.conns; ++i) {
    int fd = open_conn(opt);
    const char msg[2] = {'E', 'x'};
    char back = 0;
    errno = 0;
    if (fd >= 0 && send_all(fd, msg, 2) && recv_exact(fd, &back, 1)) fds.push_back(fd);
    else {
      ++failed;
      if (fd >= 0) note_error("echo"), close(fd);
    }
  }
  std::printf("mode=hold held=%zu failed=%d%s\n", fds.size(), failed, error_field().c_str());
  std::fflush(stdout);
  std::string line;
  std::getline(std::cin, line);  // until told to let go
  for (int fd : fds) close(fd);
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (argc < 2) die("usage: zt-load serve|throughput|cps|latency|hold|burst [options] (see the source's header)");
  opt.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) die("missing value for " + flag);
    std::string value = argv[++i];
    auto addr = [&] {
      auto a = Addr::parse(value);
      if (!a) die("not an IPv4 address:port: " + value);
      return a;
    };
    if (flag == "--listen") opt.listen = addr();
    else if (flag == "--to") opt.to = addr();
    else if (flag == "--socks") opt.socks = addr();
    else if (flag == "--streams") opt.streams = std::atoi(value.c_str());
    else if (flag == "--seconds") opt.seconds = std::atof(value.c_str());
    else if (flag == "--socks-spread") opt.socks_spread = std::atoi(value.c_str());
    else if (flag == "--count") opt.count = std::atoi(value.c_str());
    else if (flag == "--conns") opt.conns = std::atoi(value.c_str());
    else if (flag == "--concurrency") opt.concurrency = std::atoi(value.c_str());
    else if (flag == "--end") {
      if (value != "fin" && value != "reset") die("--end takes fin or reset");
      opt.end_with_reset = value == "reset";
    }
    else die("unknown flag " + flag);
  }
  if (opt.mode == "serve") {
    if (!opt.listen) die("serve needs --listen");
    return serve(opt);
  }
  if (!opt.to) die(opt.mode + " needs --to");
  if (opt.mode == "throughput") return throughput(opt);
  if (opt.mode == "cps") return connect_loop(opt, "cps", std::nullopt);
  if (opt.mode == "burst") return connect_loop(opt, "burst", uint64_t(opt.conns));
  if (opt.mode == "latency") return latency(opt);
  if (opt.mode == "hold") return hold(opt);
  die("unknown mode " + opt.mode);
}
