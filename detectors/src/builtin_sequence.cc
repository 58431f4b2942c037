// sequence: a model of the sequence itself. It remembers which short runs of (coarse) values have
// followed which, and judges each point by whether it continues the series the way its recent
// past has been continued before. Built for what the level- and shape-based built-ins miss: a
// value inside the usual range that arrives in the wrong order, and for one early alarm per
// incident on a noisy series.
//
// Four parts, each from a published detector (issue #15):
//   - Values become levels, as in CAD OSE (M. Smirnov, 2016, as run in NAB): the first `learn`
//     points fix a step of 1/`levels` of their range (CAD: 3 bits, 8 levels, over the whole
//     file's range, which a live series does not know in advance; the learning period stands in
//     for it). Later values outside that range get levels of the same step beyond it, so no range
//     is assumed. (With each NAB file's true range instead, NAB's score was lower: see
//     bench/RESULTS.md.)
//   - The memory holds every run of 1 to `order` + 1 levels seen, in a bounded table (`memory`
//     runs, 4-way set-associative, the least recently seen one forgotten first). Each point is
//     scored as CAD OSE scores it: for each context length k = 1..`order`, the k levels before
//     the point "predict" it when that context has been seen before, and the prediction fails
//     when the run context + level is new. The raw surprise is the mean of (failed predictions /
//     predictions made, 1 when none was made) and (new runs / `order`). `order` defaults to the
//     longest context whose every combination can be seen within the learning period
//     (`levels`^k <= `learn`: 2 with the defaults): longer contexts are mostly new on any noisy
//     series and drown the signal (NAB standard: 69.1 at 1, 71.6 at 2, 70.0 at 3, 63.1 at 7).
//   - Numenta's anomaly likelihood (anomaly_likelihood.h) turns the raw surprise into a score
//     that means the same on every series: 0.5 at its "red" level.
//   - The spatial check of Numenta's NAB detector: a value more than `tolerance` (5%, Numenta's)
//     of the range seen so far beyond that range scores 1 whatever the model says.
// Alarm policy (CAD OSE's rest period): after a score >= `alarm`, the model's scores are reported
// as 0 for `rest` points (150: CAD's rest on NAB's longer series, a fifth of 750 points), and the
// rest is extended while they stay >= `alarm`. A new extreme is reported during the rest: it is
// new information, not the same incident again (NAB: 65.2 when the rest held it back too).
//
// Verdict: score in [0, 1]; anomalous when score >= `alarm`; the band is the range of values seen
// so far widened by `tolerance` (outside it a value always alarms); expected is a running mean
// (weight 0.01), which also gives the direction.
// Parameters: levels (8), order (2), learn (150, as `combined`), memory (4096), average (10),
// estimate (100), history (8640), tolerance (0.05), rest (150), alarm (0.5).
// Cost: O(order) table probes per point, and one replay of the `learn` points when learning ends;
// state: 8 bytes per remembered run (32 KiB with the defaults), plus `learn` values while
// learning.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "anomaly_likelihood.h"
#include "faultline/detectors/detector.h"
#include "state_codec.h"

namespace faultline::detectors {
namespace {

struct SequenceParams {
  int64_t levels = 8;
  size_t order = 2;
  size_t learn = 150;
  size_t memory = 4096;
  AnomalyLikelihoodParams likelihood;
  double tolerance = 0.05;
  uint64_t rest = 150;
  double alarm = 0.5;
};

// A bounded set of runs of levels, keyed by a 64-bit hash: 4-way set-associative, 8 bytes a slot
// (a 32-bit tag and the point count when last seen), the least recently seen slot of a set
// replaced. A false "seen" needs two runs with the same set and tag: about 1 in 10^9 per probe.
class RunMemory {
 public:
  explicit RunMemory(size_t slots) : slots_(slots) {}

  // Marks the run seen at `now`; true when it had been seen before (and not forgotten).
  bool Remember(uint64_t hash, uint32_t now) {
    Slot* set = &slots_[(hash >> 32) % (slots_.size() / kWays) * kWays];
    const uint32_t tag = static_cast<uint32_t>(hash) | 1;  // 0 marks an empty slot
    Slot* victim = set;
    for (size_t i = 0; i < kWays; ++i) {
      if (set[i].tag == tag) {
        set[i].last = now;
        return true;
      }
      if (set[i].tag == 0) {
        victim = &set[i];
        break;
      }
      // Ages are differences mod 2^32, so the point counter may wrap.
      if (now - set[i].last > now - victim->last) victim = &set[i];
    }
    *victim = {tag, now};
    return false;
  }

  std::string_view Bytes() const {
    return {reinterpret_cast<const char*>(slots_.data()), slots_.size() * sizeof(Slot)};
  }
  bool SetBytes(std::string_view b) {
    if (b.size() != slots_.size() * sizeof(Slot)) return false;
    std::memcpy(slots_.data(), b.data(), b.size());
    return true;
  }

 private:
  static constexpr size_t kWays = 4;
  struct Slot {
    uint32_t tag = 0;
    uint32_t last = 0;
  };
  static_assert(sizeof(Slot) == 8);
  std::vector<Slot> slots_;
};

inline uint64_t Mix(uint64_t h, int64_t level) {
  h ^= static_cast<uint64_t>(level) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h *= 0xbf58476d1ce4e5b9ULL;
  return h ^ (h >> 31);
}

class Sequence : public Detector {
 public:
  explicit Sequence(const SequenceParams& p) : p_(p), likelihood_(p.likelihood), memory_(p.memory) {}

  Verdict Observe(int64_t, double x) override {
    Verdict v;
    if (!judging_) {
      lo_ = learning_.empty() ? x : std::min(lo_, x);
      hi_ = learning_.empty() ? x : std::max(hi_, x);
      mean_ = learning_.empty() ? x : mean_ + kMeanWeight * (x - mean_);
      learning_.push_back(x);
      if (learning_.size() == p_.learn) StartJudging();
      return v;
    }
    double score = likelihood_.Update(Surprise(Level(x)));
    const double range = hi_ - lo_;
    const double lower = lo_ - p_.tolerance * range, upper = hi_ + p_.tolerance * range;
    // As Numenta's detector: no extreme is new while every value so far has been the same.
    const bool extreme = range > 0 && (x < lower || x > upper);
    if (extreme) score = 1;
    v.has_band = true;
    v.expected = mean_, v.lower = lower, v.upper = upper;
    lo_ = std::min(lo_, x), hi_ = std::max(hi_, x);
    mean_ += kMeanWeight * (x - mean_);
    if (since_alarm_ < kNever) since_alarm_++;
    if (since_alarm_ <= p_.rest && !extreme) {
      if (score >= p_.alarm) since_alarm_ = 0;
      score = 0;
    }
    v.score = score;
    if (score >= p_.alarm) {
      v.anomalous = true;
      v.direction = x >= v.expected ? Direction::kUp : Direction::kDown;
      since_alarm_ = 0;
    }
    return v;
  }

  std::string SaveState() const override {
    StateWriter w("sequence");
    w.U64(judging_).Doubles(learning_).F64(lo_).F64(hi_).F64(mean_).F64(step_).F64(origin_).U64(now_);
    w.U64(recent_.size());
    for (int64_t level : recent_) w.U64(static_cast<uint64_t>(level));
    w.U64(context_seen_).U64(since_alarm_);
    likelihood_.Save(&w);
    w.Bytes(memory_.Bytes());
    return w.Take();
  }

  Status RestoreState(std::string_view bytes) override {
    StateReader r(bytes, "sequence");
    Sequence s(p_);
    uint64_t judging = 0, now = 0, levels = 0;
    r.U64(&judging), r.Doubles(&s.learning_, p_.learn - 1), r.F64(&s.lo_), r.F64(&s.hi_), r.F64(&s.mean_),
        r.F64(&s.step_), r.F64(&s.origin_), r.U64(&now), r.U64(&levels);
    if (levels > p_.order + 1) {
      return InvalidArgument("sequence state: " + std::to_string(levels) +
                             " recent levels, at most order + 1 = " + std::to_string(p_.order + 1) +
                             " (saved with another `order`?)");
    }
    for (uint64_t i = 0; i < levels; ++i) {
      uint64_t level = 0;
      r.U64(&level);
      s.recent_.push_back(static_cast<int64_t>(level));
    }
    r.U64(&s.context_seen_), r.U64(&s.since_alarm_);
    FAULTLINE_RETURN_IF_ERROR(s.likelihood_.Restore(&r, "sequence state"));
    std::string_view memory;
    const bool read = r.Bytes(&memory);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    if (read && !s.memory_.SetBytes(memory)) {
      return InvalidArgument("sequence state: memory of " + std::to_string(memory.size()) +
                             " bytes, expected " + std::to_string(p_.memory * 8) +
                             " (saved with another `memory`?)");
    }
    s.judging_ = judging == 1;
    if (judging > 1 || (s.judging_ && !s.learning_.empty()) || s.judging_ != (s.step_ > 0) ||
        !std::isfinite(s.origin_) || !(s.lo_ <= s.hi_)) {
      return InvalidArgument("sequence state: judging " + std::to_string(judging) + " with " +
                             std::to_string(s.learning_.size()) + " learning points, level step " +
                             std::to_string(s.step_) + " and range [" + std::to_string(s.lo_) +
                             ", " + std::to_string(s.hi_) + "]: inconsistent");
    }
    s.now_ = static_cast<uint32_t>(now);
    *this = std::move(s);
    return Status::Ok();
  }

 private:
  static constexpr double kMeanWeight = 0.01;
  static constexpr uint64_t kNever = UINT64_MAX / 2;

  // The learning period is over: fix the levels, and let the memory learn the runs in it (their
  // surprise trains nothing else).
  void StartJudging() {
    origin_ = lo_;
    step_ = std::max((hi_ - lo_) / double(p_.levels), 1e-9 * std::max({std::abs(lo_), std::abs(hi_), 1.0}));
    for (double x : learning_) Surprise(Level(x));
    learning_.clear();
    learning_.shrink_to_fit();
    judging_ = true;
  }

  int64_t Level(double x) const {
    // |x| < 1e150 and step_ >= 1e-9 * |origin|, so only a tiny step over a huge offset can
    // overflow: such values are all "far away" alike.
    return static_cast<int64_t>(std::clamp(std::floor((x - origin_) / step_), -1e18, 1e18));
  }

  // Remembers the runs that end with `level` and returns CAD OSE's raw surprise in [0, 1].
  double Surprise(int64_t level) {
    recent_.insert(recent_.begin(), level);
    if (recent_.size() > p_.order + 1) recent_.pop_back();
    now_++;
    uint64_t seen = 0;  // bit n: the run of the last n levels had been seen before
    uint64_t hash = 0x5eed;
    for (size_t n = 1; n <= recent_.size(); ++n) {
      hash = Mix(hash, recent_[n - 1]);
      if (memory_.Remember(hash, now_)) seen |= uint64_t{1} << n;
    }
    size_t predicted = 0, failed = 0, fresh = 0;
    for (size_t k = 1; k <= p_.order && k < recent_.size(); ++k) {
      const bool context = context_seen_ >> k & 1;  // the k levels before this one, before then
      const bool run = seen >> (k + 1) & 1;
      predicted += context;
      failed += context && !run;
      fresh += !run;
    }
    context_seen_ = seen;
    const double miss = predicted ? double(failed) / double(predicted) : 1.0;
    return 0.5 * (miss + double(fresh) / double(p_.order));
  }

  SequenceParams p_;
  bool judging_ = false;          // the learning period is over
  std::vector<double> learning_;  // the values of the learning period, while it lasts
  double lo_ = 0, hi_ = 0;        // the range of all values seen
  double mean_ = 0;
  double step_ = 0, origin_ = 0;  // levels: floor((x - origin) / step), fixed after learning
  uint32_t now_ = 0;              // points given to the memory, mod 2^32
  std::vector<int64_t> recent_;   // the last order + 1 levels, newest first
  uint64_t context_seen_ = 0;     // the `seen` bits of the previous point
  uint64_t since_alarm_ = kNever;
  AnomalyLikelihood likelihood_;
  RunMemory memory_;
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(
    sequence,
    "CAD OSE-style run novelty over quantized levels + HTM anomaly likelihood + new-extreme check, "
    "with a rest period: levels (8), order (largest k with levels^k <= learn: 2), learn (150), "
    "memory (4096 runs), average (10), estimate (100), history (8640), tolerance (0.05), rest "
    "(150), alarm (0.5)",
    [](const Params& params) -> Result<std::unique_ptr<Detector>> {
      ParamReader r("sequence", params);
      FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"levels", "order", "learn", "memory", "average",
                                                 "estimate", "history", "tolerance", "rest",
                                                 "alarm"}));
      SequenceParams p;
      FAULTLINE_ASSIGN_OR_RETURN(p.levels, r.Int("levels", p.levels, 2, 4096));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t learn, r.Int("learn", 150, 16, 100'000));
      int64_t longest = 1;  // the longest context whose combinations fit in the learning period
      while (std::pow(double(p.levels), double(longest + 1)) <= double(learn)) longest++;
      FAULTLINE_ASSIGN_OR_RETURN(int64_t order, r.Int("order", std::min<int64_t>(longest, 16), 1, 16));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t memory, r.Int("memory", 4096, 64, 1 << 22));
      if (memory % 4 != 0) {
        return InvalidArgument("sequence: parameter memory=" + std::to_string(memory) +
                               ": must be a multiple of 4 (the table is 4-way)");
      }
      FAULTLINE_ASSIGN_OR_RETURN(int64_t average, r.Int("average", 10, 1, AnomalyLikelihoodParams::kMaxAverage));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t estimate, r.Int("estimate", 100, 1, 1'000'000'000));
      FAULTLINE_ASSIGN_OR_RETURN(p.likelihood.history, r.Double("history", 8640, 1, 1e12));
      FAULTLINE_ASSIGN_OR_RETURN(p.tolerance, r.Double("tolerance", p.tolerance, 0, 100));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t rest, r.Int("rest", 150, 0, 1'000'000'000));
      FAULTLINE_ASSIGN_OR_RETURN(p.alarm, r.Double("alarm", p.alarm, 0.01, 1));
      p.order = static_cast<size_t>(order), p.learn = static_cast<size_t>(learn);
      p.memory = static_cast<size_t>(memory), p.likelihood.average = static_cast<size_t>(average);
      p.likelihood.estimate = static_cast<uint64_t>(estimate), p.rest = static_cast<uint64_t>(rest);
      return std::unique_ptr<Detector>(new Sequence(p));
    });

}  // namespace faultline::detectors
