// `t2 serve --config FILE` under mpirun: rank 0 coordinates (HTTP API, engine,
// store), ranks 1..N-1 work. All of a rank's MPI calls stay on its main thread.
// Rank 0 drains on SIGTERM or SIGINT (to itself) and on SIGUSR1 (which mpirun
// forwards to every rank): it stops accepting, lets running shards and steps
// finish, checkpoints training, tells the workers to leave, and exits 0.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "commands.h"
#include "comm/channel.h"
#include "comm/session.h"
#include "coordinator/api.h"
#include "coordinator/config.h"
#include "coordinator/engine.h"
#include "coordinator/http_server.h"
#include "coordinator/job_spec.h"
#include "store/store.h"
#include "t2/error.h"
#include "t2/log.h"
#include "worker/worker.h"

namespace t2::cli {
namespace {

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal = sig; }

struct ServeArgs {
  std::string config;
  int port = -1;
  std::string store;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

worker::WorkerOptions worker_options(const coordinator::ServiceConfig& c) {
  worker::WorkerOptions w;
  w.model_path = c.model_path;
  w.matrix_set = c.matrix_set;
  w.cache_dir = c.cache_dir;
  w.task_paths = {c.tasks_dir, c.data_root};
  w.threads = c.worker_threads;
  w.batch_size = c.batch_size;
  w.heartbeat_s = c.heartbeat_s;
  return w;
}

int run_coordinator(comm::Session& session, const coordinator::ServiceConfig& config) {
  auto log = log::get("coord");
  log->info("t2 serve: {} ranks (1 coordinator, {} workers)", session.size(),
            session.size() - 1);
  for (const auto& line : coordinator::describe(config)) log->info("  {}", line);
  if (session.size() < 2) fail("t2 serve needs at least 2 ranks: mpirun -n 3 t2 serve ...");

  const auto parent = std::filesystem::path(config.store_path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  store::Options store_options;
  store_options.fsync_each_commit = config.fsync_each_commit;
  auto store = store::Store::open(config.store_path, store_options);
  coordinator::TaskCatalog tasks({config.tasks_dir, config.data_root}, config.tasks);

  comm::Channel channel(session);
  coordinator::Engine engine(config, *store, channel, tasks);
  engine.start(now_s());
  coordinator::Api api(config, *store, engine, tasks);

  coordinator::HttpOptions http;
  http.address = config.listen_address;
  http.port = config.listen_port;
  http.max_body_bytes = config.max_body_bytes;
  http.read_timeout_s = config.read_timeout_s;
  http.threads = config.http_threads;
  coordinator::HttpServer server(http, [&api](coordinator::HttpRequest&& r,
                                             coordinator::HttpReply reply) {
    api.handle(std::move(r), std::move(reply));
  });
  server.start();
  api.set_http_counters(&server.counters());
  // Where clients and scripts find us: the bound port and this process.
  const std::string pid_file = config.store_path + ".pid";
  std::ofstream(pid_file) << getpid() << "\n";
  const std::string url_file = config.store_path + ".url";
  std::ofstream(url_file) << fmt::format("http://{}:{}\n", config.listen_address, server.port());
  log->info("listening on http://{}:{} (pid {} in {})", config.listen_address, server.port(),
            getpid(), pid_file);

  auto on_message = [&](comm::Incoming&& in) { engine.on_message(std::move(in), now_s()); };
  bool draining = false;
  for (;;) {
    const double now = now_s();
    bool any = false;
    try {
      any = channel.poll(on_message);
      any = engine.tick(now) || any;
    } catch (const std::exception& e) {
      // One bad event must not take the service down; it is logged and skipped.
      log->error("main loop: {}", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (g_signal && !draining) {
      log->info("signal {}: draining (new jobs refused; running work finishes)",
                g_signal.load());
      draining = true;
      engine.begin_drain();
    }
    if (draining && engine.drained(now)) break;
    if (!any) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }

  engine.shutdown_workers();
  channel.drain(10, on_message);
  server.stop();
  store->flush();
  std::filesystem::remove(pid_file);
  std::filesystem::remove(url_file);
  log->info("stopped cleanly");
  return 0;
}

void run_serve(const ServeArgs& args) {
  // Workers leave only when rank 0 says so; rank 0 drains on these.
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGUSR1, on_signal);
  comm::Session session;
  auto config = coordinator::load_config(args.config);
  if (args.port >= 0) config.listen_port = uint16_t(args.port);
  if (!args.store.empty()) config.store_path = args.store;
  int status = 0;
  try {
    status = session.rank() == 0 ? run_coordinator(session, config)
                                 : worker::run_worker(session, worker_options(config));
  } catch (const std::exception& e) {
    log::get(session.rank() == 0 ? "coord" : "worker")->critical("{}", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (status != 0) throw Error(fmt::format("rank {} stopped with status {}", session.rank(),
                                           status));
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve", "Run the service under mpirun: rank 0 serves HTTP, the other ranks work");
  auto a = std::make_shared<ServeArgs>();
  cmd->add_option("--config", a->config, "Service configuration (TOML), e.g. configs/local.toml")
      ->required();
  cmd->add_option("--port", a->port, "Listen on this port instead of the config's (0: any)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--store", a->store, "Use this store file instead of the config's");
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace t2::cli
