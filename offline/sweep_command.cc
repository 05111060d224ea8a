// sweep: the ablation grid of the study. For every teacher (one per direction) and every
// mixer x size x site group, distil a student (the distill subcommand) and evaluate it (the
// eval path); write the table as markdown and CSV and a plot of BLEU against parameters.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/model_spec_io.h"
#include "model/token_mixer.h"
#include "offline/commands.h"
#include "offline/common.h"
#include "offline/evaluate.h"
#include "offline/progress.h"
#include "offline/records.h"
#include "offline/svg_plot.h"
#include "offline/table.h"
#include "offline/text_io.h"

namespace mixserve::offline {

namespace fs = std::filesystem;

namespace {

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string ShortSite(const std::string& sites) {
  std::string out;
  for (const auto& s : SplitList(sites, '+')) {
    const std::string a = s == "encoder_self" ? "enc" : s == "decoder_self" ? "dec" : s == "decoder_cross" ? "cross" : s;
    out += (out.empty() ? "" : "+") + a;
  }
  return out;
}

// Whether a cell of the grid is a distinct, buildable configuration: the mixer supports every
// site of the group with that size ('-': no size), and '-' is not a sized mixer's default
// size under another name. Probed on a copy of the teacher's shape with a tiny max_len, so
// that even the largest feed-forward sizes cost nothing to build.
bool CellValid(const ModelSpec& teacher, const std::string& mixer, const std::string& size,
               const std::vector<std::string>& sites) {
  ModelSpec shape = teacher;
  shape.max_len = 4;
  auto builds = [&](Site site, const std::string& sz) {
    try {
      model::MixerRegistry::Get().Create(model::MixerContext{&shape, site, 0, MixerSpec{mixer, sz, 0, 0, 0}});
      return true;
    } catch (const std::invalid_argument&) {
      return false;
    }
  };
  for (const auto& name : sites) {
    Site site;
    if (name == "encoder_self") site = Site::kEncoderSelf;
    else if (name == "decoder_self") site = Site::kDecoderSelf;
    else if (name == "decoder_cross") site = Site::kDecoderCross;
    else throw UsageError("--sites: unknown site '" + name + "'");
    if (!model::MixerRegistry::Get().Supports(mixer, site)) return false;
    if (!builds(site, size == "-" ? "" : size)) return false;
    if (size == "-" && model::MixerRegistry::Get().TakesSize(mixer, shape)) return false;
  }
  return true;
}

// One plot point per table row: x = parameters, y = BLEU of the first split.
PlotPoint PointOf(const std::vector<std::string>& row) {
  const std::string& size = row[2];
  const std::string& sites = row[3];
  return {std::stod(row[4]), std::stod(row[5]), row[0] + " " + row[1],
          size == "-" ? ShortSite(sites) : size + " " + ShortSite(sites)};
}

void WriteOutputs(const std::string& out, const Table& table, const std::string& results,
                  const std::string& first_split, bool beam) {
  std::vector<PlotPoint> points;
  for (const auto& row : table.rows) points.push_back(PointOf(row));
  PlotOptions po;
  po.title = "BLEU (" + first_split + ") against parameter count";
  po.x_label = "parameters";
  po.y_label = std::string("BLEU ") + (beam ? "(beam)" : "(greedy)");
  po.log_x = true;
  WriteFile(out + "/ablation.svg", RenderScatterSvg(points, po));
  WriteFile(out + "/ablation.csv", table.Csv());
  WriteFile(out + "/ablation.md", table.Markdown());
  WriteFile(out + "/results.jsonl", results);
}

// Parses "i/n" (0 <= i < n).
std::pair<size_t, size_t> ParseShard(const std::string& text) {
  const auto slash = text.find('/');
  size_t i = 0, n = 0;
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    size_t used = 0;
    i = std::stoul(text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("trailing");
    n = std::stoul(text.substr(slash + 1), &used);
    if (used != text.size() - slash - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw UsageError("--shard must look like i/n (e.g. 0/4), got '" + text + "'");
  }
  if (n == 0 || i >= n) throw UsageError("--shard i/n needs 0 <= i < n, got '" + text + "'");
  return {i, n};
}

// The rows of an ablation.csv, header first; `flag` names where the file came from in errors.
std::vector<std::vector<std::string>> ReadTableRows(const std::string& csv, const std::string& flag) {
  if (!fs::exists(csv)) throw UsageError(flag + ": " + csv + " does not exist");
  auto rows = ParseCsv(ReadFile(csv));
  if (rows.empty()) throw UsageError(flag + ": " + csv + " is empty");
  return rows;
}

// --latency_csv: appends the column "bench_latency_ms" from a `bench/cell_bench --csv` file
// (columns method, size, sites, ..., ms_per_translation), matched on method, size and sites;
// empty where the file has no such cell.
void AddBenchLatency(Table* table, const std::string& csv) {
  const auto rows = ReadTableRows(csv, "--latency_csv");
  auto column = [&](const std::vector<std::string>& header, const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end())
      throw UsageError("--latency_csv: " + csv + " has no column '" + name + "'");
    return static_cast<size_t>(it - header.begin());
  };
  const size_t method = column(rows[0], "method"), size = column(rows[0], "size"),
               sites = column(rows[0], "sites"), ms = column(rows[0], "ms_per_translation");
  std::map<std::string, std::string> by_cell;
  for (size_t r = 1; r < rows.size(); ++r) {
    if (rows[r].size() != rows[0].size())
      throw UsageError("--latency_csv: " + csv + " row " + std::to_string(r + 1) +
                       " has another width than its header");
    by_cell[rows[r][method] + "|" + rows[r][size] + "|" + rows[r][sites]] = rows[r][ms];
  }
  const size_t t_method = column(table->columns, "method"), t_size = column(table->columns, "size"),
               t_sites = column(table->columns, "sites");
  table->columns.push_back("bench_latency_ms");
  for (auto& row : table->rows) {
    const auto it = by_cell.find(row[t_method] + "|" + row[t_size] + "|" + row[t_sites]);
    row.push_back(it == by_cell.end() ? "" : it->second);
  }
}

// --merge: the tables of several sweep folders (shards of one grid) as one table and plot.
int MergeSweeps(const std::vector<std::string>& dirs, const std::string& out, bool beam,
                const std::string& latency_csv) {
  Table table;
  std::string results;
  for (const auto& dir : dirs) {
    const std::string csv = dir + "/ablation.csv";
    auto rows = ReadTableRows(csv, "--merge");
    if (table.columns.empty()) table.columns = rows[0];
    if (rows[0] != table.columns)
      throw UsageError("--merge: " + csv + " has other columns than " + dirs[0] + "/ablation.csv");
    for (size_t r = 1; r < rows.size(); ++r) table.Add(rows[r]);
    const std::string jsonl = dir + "/results.jsonl";
    if (fs::exists(jsonl)) {
      std::string text = ReadFile(jsonl);
      ParseEvalResults(text, jsonl);  // a bad line: an error naming the file and line
      if (!text.empty() && text.back() != '\n') text += '\n';
      results += text;
    }
  }
  if (table.columns.size() < 6) throw UsageError("--merge: tables have too few columns");
  if (!latency_csv.empty()) AddBenchLatency(&table, latency_csv);
  fs::create_directories(out);
  WriteOutputs(out, table, results, table.columns[5].substr(5), beam);
  Print("sweep: merged %zu rows of %zu folders -> %s/ablation.{md,csv,svg}\n", table.rows.size(),
        dirs.size(), out.c_str());
  Print("%s", table.Markdown().c_str());
  return 0;
}

}  // namespace

int RunSweep(const Args& args) {
  FlagSet f(
      "sweep",
      "For each teacher (one per direction) and each cell of mixers x sizes x sites, runs\n"
      "distill and eval, then writes <out>/ablation.{md,csv} (direction, method, size, sites,\n"
      "parameters, BLEU per test split, decode latency), <out>/ablation.svg (BLEU against\n"
      "parameter count) and <out>/results.jsonl (full eval results).",
      Concat({{{"teachers", "", "teacher model folders, comma-separated (one per direction)"},
               {"out", "", "output folder (students, tables, plot)", true},
               {"mixers", "alr", "mixer types, comma-separated"},
               {"sizes", "s", "sizes, comma-separated; '-' for mixers without sizes"},
               {"sites", "encoder_self,decoder_self,decoder_cross",
                "site groups, comma-separated; join sites of one group with '+'"},
               {"layers", "all", "layers replaced in every cell"},
               {"include_teacher", "true", "add the teacher itself as a row"},
               {"skip_invalid", "true", "skip cells whose mixer/site/size combination is invalid"},
               {"data", "data/multi30k", "folder of <split>.<lang>[.gz] files"},
               {"limit", "0", "distillation: first N training pairs (0: all)"},
               {"epochs", "1", "distillation epochs"},
               {"max_steps", "0", "distillation steps (0: epochs)"},
               {"lr", "1e-3", "distillation learning rate"},
               {"max_tokens", "1500", "distillation batch size in tokens"},
               {"valid_limit", "300", "validation sentences for the before/after MSE"},
               {"splits", "test_2016_flickr,test_2017_flickr", "test splits of the table"},
               {"test_limit", "0", "first N sentences of each test split (0: all)"},
               {"beam", "1", "beam size for BLEU (1: greedy)"},
               {"batch_size", "64", "decoding batch size"},
               {"latency_sentences", "100", "sentences timed at batch 1"},
               {"precision", "auto", "distillation precision (see distill --help)"},
               {"shard", "0/1",
                "i/n: run only the cells whose index modulo n is i (the teacher rows in shard 0), "
                "so n processes share one grid"},
               {"merge", "",
                "instead of running, merge the tables of these sweep folders (comma-separated) "
                "into --out"},
               {"latency_csv", "",
                "with --merge: a `bench/cell_bench --csv` file whose ms_per_translation becomes "
                "the column bench_latency_ms (matched on method, size and sites)"},
               {"resume", "false",
                "keep the rows already in <out>/ablation.csv and run only the cells not there"},
               {"skip", "",
                "ablation.csv files (comma-separated) whose cells are not run again (their rows "
                "stay out of this table; --merge joins them)"}},
              DeviceFlags()}));
  if (!f.Parse(args)) {
    Print("%s", f.Usage().c_str());
    return 0;
  }
  const std::string out = f.Get("out");
  if (!f.Get("merge").empty())
    return MergeSweeps(f.GetList("merge"), out, f.GetInt("beam") > 1, f.Get("latency_csv"));
  if (!f.Get("latency_csv").empty()) throw UsageError("--latency_csv needs --merge");
  const auto [shard, shards] = ParseShard(f.Get("shard"));
  const auto teachers = f.GetList("teachers");
  const auto mixers = f.GetList("mixers");
  const auto sizes = f.GetList("sizes");
  const auto site_groups = f.GetList("sites");
  const auto splits = f.GetList("splits");
  if (mixers.empty() || sizes.empty() || site_groups.empty() || splits.empty())
    throw UsageError("--mixers, --sizes, --sites and --splits must not be empty");
  if (teachers.empty()) throw UsageError("--teachers is required (or --merge)");
  for (const auto& t : teachers) RequireModelDir(t, "teachers");
  fs::create_directories(out);

  Table table;
  table.columns = {"direction", "method", "size", "sites", "parameters"};
  for (const auto& s : splits) table.columns.push_back("bleu_" + s);
  table.columns.push_back("latency_ms");
  std::string results;
  Stopwatch sw;
  // Cells measured before: rows of --skip tables (not repeated here) and, with --resume, the
  // rows already in this folder (kept).
  std::set<std::string> done;
  auto cell_key = [](const std::string& direction, const std::string& method,
                     const std::string& size, const std::string& sites) {
    return direction + "|" + method + "|" + size + "|" + sites;
  };
  auto read_rows = [&](const std::string& csv, bool keep) {
    if (keep && !fs::exists(csv)) return;  // --resume of a fresh folder
    auto rows = ReadTableRows(csv, keep ? "--resume" : "--skip");
    if (rows[0] != table.columns)
      throw UsageError(csv + " has other columns than this sweep's table (--splits must match)");
    for (size_t r = 1; r < rows.size(); ++r) {
      done.insert(cell_key(rows[r][0], rows[r][1], rows[r][2], rows[r][3]));
      if (keep) table.Add(rows[r]);
    }
  };
  for (const auto& csv : f.GetList("skip")) read_rows(csv, false);
  if (f.GetBool("resume")) {
    read_rows(out + "/ablation.csv", true);
    if (fs::exists(out + "/results.jsonl")) {
      results = ReadFile(out + "/results.jsonl");
      ParseEvalResults(results, out + "/results.jsonl");
    }
    Print("sweep: resuming with %zu rows from %s\n", table.rows.size(), out.c_str());
  }

  auto eval = [&](const std::string& dir, const std::string& direction, const std::string& method,
                  const std::string& size, const std::string& sites) {
    EvalConfig ec;
    ec.model_dir = dir;
    ec.data = f.Get("data");
    ec.splits = splits;
    ec.limit = static_cast<size_t>(f.GetInt64("test_limit"));
    ec.beam = f.GetInt("beam");
    ec.batch_size = f.GetInt("batch_size");
    ec.latency_sentences = f.GetInt("latency_sentences");
    ec.device = f.Get("device");
    ec.threads = f.GetInt("threads");
    const EvalResult r = EvaluateModel(ec);
    std::vector<std::string> row = {direction, method, size, sites, std::to_string(r.parameters)};
    for (const auto& s : splits) {
      const auto& sr = r.splits.at(s);
      row.push_back(Fixed(ec.beam > 1 ? sr.bleu_beam : sr.bleu_greedy, 2));
    }
    row.push_back(Fixed(r.latency_ms_mean, 2));
    table.Add(row);
    const SweepCell cell{direction, method, size, sites};
    results += EvalResultJson(r, &cell) + "\n";
    // Written after every row, so an interrupted sweep keeps what it measured.
    WriteFile(out + "/ablation.csv", table.Csv());
    WriteFile(out + "/ablation.md", table.Markdown());
    WriteFile(out + "/results.jsonl", results);
  };

  size_t cells = 0, skipped = 0, before = 0, index = 0;
  for (const auto& teacher : teachers) {
    ModelSpec spec;
    std::string err;
    if (!ReadModelSpec(teacher + "/model.pbtxt", &spec, &err)) throw std::runtime_error(err);
    const std::string direction = spec.source_language + "-" + spec.target_language;
    if (f.GetBool("include_teacher") && shard == 0 &&
        !done.count(cell_key(direction, "mha (teacher)", "-", "-")))
      eval(teacher, direction, "mha (teacher)", "-", "-");
    for (const auto& mixer : mixers) {
      for (const auto& size : sizes) {
        for (const auto& group : site_groups) {
          if (f.GetBool("skip_invalid") && !CellValid(spec, mixer, size, SplitList(group, '+'))) {
            ++skipped;
            continue;
          }
          if (done.count(cell_key(direction, mixer, size, group))) {
            ++before;
            continue;
          }
          if (index++ % shards != shard) continue;
          const std::string sites = [&] {
            std::string s;
            for (const auto& x : SplitList(group, '+')) s += (s.empty() ? "" : ",") + x;
            return s;
          }();
          const std::string cell = direction + "/" + mixer + (size == "-" ? "" : "-" + size) + "-" +
                                   ShortSite(group);
          const std::string dir = out + "/" + cell;
          Print("sweep: cell %s\n", cell.c_str());
          Args dargs = {"--teacher=" + teacher, "--out=" + dir, "--mixer=" + mixer,
                        "--sites=" + sites, "--layers=" + f.Get("layers"),
                        "--data=" + f.Get("data"), "--limit=" + f.Get("limit"),
                        "--epochs=" + f.Get("epochs"), "--max_steps=" + f.Get("max_steps"),
                        "--lr=" + f.Get("lr"), "--max_tokens=" + f.Get("max_tokens"),
                        "--valid_limit=" + f.Get("valid_limit"), "--bleu=false",
                        "--device=" + f.Get("device"), "--threads=" + f.Get("threads"),
                        "--precision=" + f.Get("precision")};
          if (size != "-") dargs.push_back("--size=" + size);
          try {
            RunDistill(dargs);
          } catch (const std::invalid_argument& e) {
            if (!f.GetBool("skip_invalid")) throw;
            Print("sweep: skipping %s: %s\n", cell.c_str(), e.what());
            ++skipped;
            continue;
          } catch (const UsageError& e) {
            if (!f.GetBool("skip_invalid")) throw;
            Print("sweep: skipping %s: %s\n", cell.c_str(), e.what());
            ++skipped;
            continue;
          }
          eval(dir, direction, mixer, size, group);
          ++cells;
        }
      }
    }
  }
  WriteOutputs(out, table, results, splits[0], f.GetInt("beam") > 1);
  Print("sweep: %zu cells (%zu skipped, %zu measured before) in %s -> %s/ablation.{md,csv,svg}\n",
        cells, skipped, before, FormatDuration(sw.Seconds()).c_str(), out.c_str());
  Print("%s", table.Markdown().c_str());
  return 0;
}

}  // namespace mixserve::offline
