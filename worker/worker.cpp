// The worker rank (see worker.h): start-up in cache order, the MPI loop, and
// the compute thread with its queue.
#include "worker/worker.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "backbone/expert.h"
#include "comm/channel.h"
#include "worker/context.h"
#include "worker/fewshot.h"
#include "worker/shard.h"
#include "worker/train_step.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::worker {

using nlohmann::json;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Work for the compute thread, in arrival order.
class WorkQueue {
 public:
  void push(comm::Envelope e) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(e));
    cv_.notify_one();
  }
  // Blocks until work arrives; false once closed and empty.
  bool pop(comm::Envelope& out) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) return false;
    out = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    return true;
  }
  void done() {
    std::lock_guard lock(mutex_);
    busy_ = false;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    cv_.notify_all();
  }
  size_t size() const {
    std::lock_guard lock(mutex_);
    return queue_.size() + (busy_ ? 1 : 0);
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<comm::Envelope> queue_;
  bool closed_ = false, busy_ = false;
};

void fatal(const std::string& what) {
  log::get("worker")->critical("{}", what);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

// Loads and checks an expert file for rank 0, which has no model to check it with.
comm::Envelope check_expert(Context& ctx, const json& body) {
  comm::Envelope out;
  out.kind = comm::Kind::kExpertData;
  out.body = {{"name", body.value("name", "")}, {"file", body.value("file", "")}};
  try {
    const backbone::Expert x = backbone::expert_load(body.at("file"), ctx.svf());
    out.body["ok"] = true;
    out.body["task"] = x.task;
    out.body["base_model_sha256"] = x.base_model_sha256;
    out.body["matrix_set"] = backbone::matrix_set_name(x.set);
    if (x.validation_accuracy > 0) out.body["validation_accuracy"] = x.validation_accuracy;
    out.set_blob_floats(x.p);
  } catch (const std::exception& e) {
    out.body["ok"] = false;
    out.body["error"] = e.what();
  }
  return out;
}

void compute_loop(Context& ctx, WorkQueue& queue) {
  omp_set_num_threads(ctx.options().threads);  // per thread: set it where the work runs
  auto log = log::get("worker");
  comm::Channel& ch = ctx.channel();
  comm::Envelope work;
  while (queue.pop(work)) {
    const uint64_t placement = work.body.value("placement", uint64_t(0));
    try {
      if (work.kind == comm::Kind::kExpertCheck) {
        ch.post(0, check_expert(ctx, work.body));
      } else if (ctx.cancelled(placement)) {
        log->debug("placement {} cancelled before it started", placement);
      } else if (work.kind == comm::Kind::kShard) {
        ctx.take_experts(work.body, work.blob_floats());
        json result = work.body.value("fewshot", false)
                          ? run_fewshot(ctx, work.body)
                          : run_shard(ctx, work.body, [&](int64_t done) {
                              ch.post(0, comm::Envelope{comm::Kind::kProgress,
                                                        {{"placement", placement},
                                                         {"done", done}}, {}});
                            });
        if (!result.is_null()) {
          log->debug("placement {}: {} requests in {:.2f} s", placement,
                     result["items"].size(), result["seconds"].get<double>());
          ch.post(0, comm::Envelope{comm::Kind::kResult, std::move(result), {}});
        }
      } else if (work.kind == comm::Kind::kTrainStep) {
        StepOutcome out = run_train_step(ctx, work.body, work.blob_floats());
        comm::Envelope reply{comm::Kind::kResult, std::move(out.body), {}};
        if (work.body.value("leader", -1) == ch.rank()) reply.set_blob_floats(out.state);
        if (!ctx.cancelled(placement)) ch.post(0, std::move(reply));
      }
    } catch (const std::exception& e) {
      log->error("placement {}: {}", placement, e.what());
      if (!ctx.cancelled(placement))
        ch.post(0, comm::Envelope{comm::Kind::kFailed,
                                  {{"placement", placement}, {"error", e.what()}}, {}});
    }
    queue.done();
  }
}

}  // namespace

int run_worker(comm::Session& session, const WorkerOptions& options) {
  auto log = log::get("worker");
  comm::Channel channel(session);
  omp_set_num_threads(options.threads);
  const double t0 = now_s();
  std::vector<comm::Incoming> early;  // messages that came before we were ready
  auto keep = [&](comm::Incoming&& in) { early.push_back(std::move(in)); };

  std::shared_ptr<const backbone::Model> model;
  std::shared_ptr<const backbone::Svf> svf;
  try {
    model = backbone::Model::load(options.model_path);
    // Rank 1 opens the cache first (building it when missing); the others wait
    // for its word, then map the same file: one build, one copy per node.
    if (session.rank() != 1) {
      bool ready = false;
      while (!ready) {
        channel.poll([&](comm::Incoming&& in) {
          if (in.source == 1 && in.envelope.kind == comm::Kind::kHello) ready = true;
          else keep(std::move(in));
        });
        if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    const std::string cache = options.cache_dir.empty() ? backbone::default_cache_dir()
                                                        : options.cache_dir;
    svf = backbone::Svf::open(*model, backbone::parse_matrix_set(options.matrix_set), cache);
  } catch (const std::exception& e) {
    fatal(fmt::format("cannot start: {}", e.what()));
    return 1;
  }

  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const json hello = {{"pid", int(getpid())},
                      {"host", host},
                      {"model_sha256", svf->model_sha256()},
                      {"matrix_set", backbone::matrix_set_name(svf->matrix_set())},
                      {"total_rank", svf->total_rank()},
                      {"threads", options.threads},
                      {"svd_cache", svf->cache_path()},
                      {"load_seconds", now_s() - t0}};
  if (session.rank() == 1)
    for (int r = 2; r < session.size(); ++r)
      channel.post(r, comm::Envelope{comm::Kind::kHello, hello, {}});
  channel.post(0, comm::Envelope{comm::Kind::kHello, hello, {}});
  log->info("ready in {:.1f} s: {} threads, SVD cache {}", now_s() - t0, options.threads,
            svf->cache_path().empty() ? "(in memory)" : svf->cache_path());

  Context ctx(options, model, svf, channel);
  WorkQueue queue;
  std::thread compute([&] { compute_loop(ctx, queue); });

  bool stop = false;
  auto handle = [&](comm::Incoming&& in) {
    comm::Envelope& e = in.envelope;
    switch (e.kind) {
      case comm::Kind::kShard:
      case comm::Kind::kExpertCheck:
        queue.push(std::move(e));
        break;
      case comm::Kind::kTrainStep: {
        // Members create the group's communicator now, while their MPI threads
        // are free, rather than when each finishes its rollouts.
        const auto group = e.body.at("group").get<std::vector<int>>();
        channel.prepare_group(e.body.at("comm_key").get<uint64_t>(), group);
        queue.push(std::move(e));
        break;
      }
      case comm::Kind::kCancel:
        ctx.cancel(e.body.value("placement", uint64_t(0)));
        if (e.body.contains("abort_allreduce"))
          channel.abort_allreduce(e.body["abort_allreduce"].get<uint64_t>());
        break;
      case comm::Kind::kShutdown:
        stop = true;
        break;
      case comm::Kind::kHello:
        break;
      default:
        log->warn("unexpected '{}' from rank {}", comm::kind_name(e.kind), in.source);
    }
  };
  for (auto& in : early) handle(std::move(in));

  double last_beat = 0;
  while (!stop) {
    const bool any = channel.poll(handle);
    const double now = now_s();
    if (now - last_beat >= options.heartbeat_s) {
      last_beat = now;
      channel.post(0, comm::Envelope{comm::Kind::kHeartbeat,
                                     {{"queued", queue.size()}}, {}});
    }
    if (!any) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }

  queue.close();
  // Rank 0 stops us once nothing runs here; after its drain timeout something
  // may: give it a moment, then leave without it.
  const double until = now_s() + 10;
  while (queue.size() > 0 && now_s() < until) {
    channel.poll([](comm::Incoming&&) {});
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  channel.drain(5, [](comm::Incoming&&) {});
  if (queue.size() > 0) {
    log->warn("leaving with work still running");
    compute.detach();
    MPI_Finalize();
    std::_Exit(0);
  }
  compute.join();
  log->info("stopped");
  return 0;
}

}  // namespace t2::worker
