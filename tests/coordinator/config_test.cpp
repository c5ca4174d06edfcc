// The service config: defaults, every section read, and typos refused by name.
#include <gtest/gtest.h>

#include "coordinator/config.h"
#include "t2/error.h"

namespace t2::coordinator {
namespace {

const char* kMinimal = R"([model]
path = "m.gguf"
[http]
token = "secret-token"
)";

TEST(Config, MinimalFileTakesTheDefaults) {
  const ServiceConfig c = parse_config(kMinimal, "min.toml");
  EXPECT_EQ(c.model_path, "m.gguf");
  EXPECT_EQ(c.listen_address, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.token, "secret-token");
  EXPECT_EQ(c.matrix_set, "mlp");
  EXPECT_EQ(c.checkpoint_every, 2);
  bool masked = false;
  for (const auto& line : describe(c)) {
    EXPECT_EQ(line.find("secret-token"), std::string::npos) << line;
    masked = masked || line.find("se***") != std::string::npos;
  }
  EXPECT_TRUE(masked);
}

TEST(Config, ReadsEverySection) {
  const ServiceConfig c = parse_config(R"([model]
path = "m.gguf"
matrix_set = "all"
[store]
path = "x.db"
fsync = false
[http]
listen = "0.0.0.0:9000"
token = "t"
threads = 3
[tasks]
enabled = ["gsm8k"]
[[experts]]
name = "a"
file = "a.safetensors"
[worker]
threads = 2
batch_size = 4
[train]
checkpoint_every = 5
[scheduler]
max_shard_batch = 2
)", "full.toml");
  EXPECT_EQ(c.matrix_set, "all");
  EXPECT_FALSE(c.fsync_each_commit);
  EXPECT_EQ(c.listen_address, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 9000);
  EXPECT_EQ(c.http_threads, 3);
  ASSERT_EQ(c.tasks.size(), 1u);
  ASSERT_EQ(c.experts.size(), 1u);
  EXPECT_EQ(c.experts[0].file, "a.safetensors");
  EXPECT_EQ(c.worker_threads, 2);
  EXPECT_EQ(c.checkpoint_every, 5);
  EXPECT_EQ(c.max_shard_batch, 2u);
}

TEST(Config, TokenComesFromTheEnvironmentWhenNotInTheFile) {
  setenv("T2_TEST_TOKEN_VAR", "from-env", 1);
  const ServiceConfig c = parse_config("[model]\npath = \"m\"\n[http]\ntoken_env = "
                                       "\"T2_TEST_TOKEN_VAR\"\n", "env.toml");
  EXPECT_EQ(c.token, "from-env");
  EXPECT_EQ(c.token_source, "$T2_TEST_TOKEN_VAR");
  unsetenv("T2_TEST_TOKEN_VAR");
  EXPECT_THROW(parse_config("[model]\npath = \"m\"\n[http]\ntoken_env = \"T2_TEST_TOKEN_VAR\"\n",
                            "env.toml"), Error);
}

TEST(Config, RefusesWhatItCannotUse) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"[model]\npath = \"m\"\n[http]\ntoken = \"t\"\n[modle]\n", "unknown section"},
      {"[model]\npath = \"m\"\ncolour = 1\n[http]\ntoken = \"t\"\n", "unknown key"},
      {"[http]\ntoken = \"t\"\n", "no model"},
      {"[model]\npath = 3\n[http]\ntoken = \"t\"\n", "wrong type"},
      {"[model]\npath = \"m\"\nmatrix_set = \"most\"\n[http]\ntoken = \"t\"\n", "bad set"},
      {"[model]\npath = \"m\"\n[http]\ntoken = \"t\"\nlisten = \"localhost\"\n", "no port"},
      {"[model]\npath = \"m\"\n[http]\ntoken = \"t\"\nlisten = \"a:99999\"\n", "bad port"},
      {"[model]\npath = \"m\"\n[http]\ntoken = \"t\"\n[worker]\nbatch_size = 0\n", "batch"},
      {"[model]\npath = \"m\"\n[http]\ntoken = \"t\"\n[worker]\nheartbeat_s = 1\n"
       "lost_after_s = 1\n", "lost too soon"},
      {"[model]\npath = \"m\"\n[http]\ntoken = \"t\"\n[[experts]]\nname = \"a\"\n", "no file"},
      {"[model\npath = \"m\"\n", "syntax"},
  };
  for (const auto& [text, why] : bad) EXPECT_THROW(parse_config(text, "bad.toml"), Error) << why;
}

}  // namespace
}  // namespace t2::coordinator
