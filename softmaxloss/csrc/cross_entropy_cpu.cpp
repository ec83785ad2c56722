// The C++ Functions of `manual` and `fused` on the CPU: ManualCpu and FusedCpu, autograd
// Functions for the simple case (class indices, no class weights, no label smoothing).
//
// Same contract and math as the simple case of the Python Functions `ManualCrossEntropy` and
// `FusedCrossEntropy` in functional.py (which serve every other case, CUDA, torch.compile
// and machines without a compiler; `functional._run` decides which serves a call): (M, C)
// contiguous float32/float64/bfloat16/float16 logits x, int64 class indices t (ignored rows
// pointed at any valid class), an optional bool mask `kept` of kept rows (absent: none
// ignored), and the reduction (`Reduction` below, the values of
// softmaxloss.functional.Reduction). Written in C++ for small calls: a Python
// autograd.Function costs tens of microseconds per call in Python and tiny tensor ops, more
// than the arithmetic of a 128x100 input. The row loops use ATen's vectorised exp (for
// float32/float64 Sleef's 1-ulp exp, the one F.cross_entropy's softmax uses; `Lanes::exp`).
//
// bfloat16 and float16 logits are read as they are and widened to float32 in registers (the
// compute type, PyTorch's opmath: `acc_t` below); every sum, max and exp is float32, and the
// gradient is rounded to the input's dtype once, when it is stored. Per-row m_n and log s_n
// and the per-row losses stay float32. The dtype is the row loops' template parameter:
// `Lanes` below is the one place that knows how a dtype is loaded and stored.
//
// For one row n (m_n = max_c x_nc, s_n = sum_c exp(x_nc - m_n)):
//   l_n            = (m_n - x_{n,t_n}) + log s_n       (both terms >= 0: no cancellation)
//   p_nc           = exp((x_nc - m_n) - log s_n)
//   d l_n / d x_nc = p_nc - [c = t_n]
// The loss is reduced with r_n = 1 / D (mean, D = kept rows, NaN when none), 1 (sum) or
// g_n (none, from the incoming gradient); ignored rows get loss 0 and gradient 0, even where
// their logits are inf or NaN (as F.cross_entropy).
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>

namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

constexpr int64_t kGrain = 16;  // rows per parallel task

// The reduction: the values of softmaxloss.functional.Reduction (NONE, MEAN, SUM), which the
// Python caller passes as an integer. The module exposes them as REDUCTION_VALUES, and
// tests/test_cpu_ext.py fails if the two ever disagree.
enum class Reduction : int64_t { None = 0, Mean = 1, Sum = 2 };

int64_t value_of(Reduction reduction) { return static_cast<int64_t>(reduction); }

// The reduction an integer from Python names; refuses any other value.
Reduction reduction_of(int64_t value) {
  TORCH_CHECK(value >= value_of(Reduction::None) && value <= value_of(Reduction::Sum),
              "reduction must be ", value_of(Reduction::None), " (NONE), ",
              value_of(Reduction::Mean), " (MEAN) or ", value_of(Reduction::Sum),
              " (SUM), the values of softmaxloss.functional.Reduction; got ", value);
  return static_cast<Reduction>(value);
}

void refuse_double_backward() {
  TORCH_CHECK(
      !at::GradMode::is_enabled(),
      "the hand-written softmax cross-entropy gradient is not differentiable "
      "(create_graph=True / double backward); use impl='autograd' or impl='torch'");
}

// The compute type of logits of type T: float for bfloat16/float16, T itself otherwise.
template <typename T>
using acc_t = at::opmath_type<T>;

// A row of T read and written in vectors of its compute type A (W values at a time):
// float32/float64 as they are; bfloat16/float16 widened to float32 in registers on load
// and rounded to nearest (even) on store, by ATen's conversions (`load_to_float`,
// `convert`), the ones PyTorch's own softmax kernels use.
template <typename T>
struct Lanes {
  using A = acc_t<T>;
  using V = at::vec::Vectorized<A>;
  static constexpr int64_t W = V::size();
  static constexpr bool kWidened = !std::is_same_v<T, A>;

  static V load(const T* p) {
    if constexpr (kWidened) {
      V v;
      at::vec::load_to_float(p, v);
      return v;
    } else {
      return V::loadu(p);
    }
  }
  // the first n < W values; the other lanes are 0
  static V load(const T* p, int64_t n) {
    if constexpr (kWidened) {
      return at::vec::convert<A>(at::vec::Vectorized<T>::loadu(p, n));
    } else {
      return V::loadu(p, n);
    }
  }
  static void store(const V& v, T* p, int64_t n = W) {
    if constexpr (kWidened) {
      at::vec::convert<T>(v).store(p, n);
    } else {
      v.store(p, n);
    }
  }
  // exp(v) for v <= 0 or -inf (never NaN: a row with a non-finite max is not evaluated,
  // `nan_row`), in T's own precision: Sleef's 1-ulp exp for float32/float64; for
  // bfloat16/float16 ATen's inline 20-ulp float32 exp (no call into Sleef per vector; it
  // maps NaN to a finite value), whose error, at most 2.4e-6 relative, is below 1/400 of a
  // float16 eps and 1/3000 of a bfloat16 eps: invisible once the gradient is rounded to T,
  // but for values within that distance of a rounding boundary.
  static V exp(const V& v) {
    if constexpr (kWidened) {
      return v.exp_u20();
    } else {
      return v.exp();
    }
  }
};

// out_c = f(in_c) over one row of C values, in vectors of the compute type (in and out: a
// dtype or its compute type).
template <typename TO, typename TI, typename F>
void map_row(const F& f, TO* out, const TI* in, int64_t C) {
  using LI = Lanes<TI>;
  using LO = Lanes<TO>;
  static_assert(std::is_same_v<typename LI::A, typename LO::A>);
  constexpr int64_t W = LI::W;
  int64_t c = 0;
  for (; c + W <= C; c += W) LO::store(f(LI::load(in + c)), out + c);
  if (c < C) LO::store(f(LI::load(in + c, C - c)), out + c, C - c);
}

// Asks for the cache lines of [p, p + bytes) ahead of their use (a hint: no effect where the
// compiler has no such builtin). `bytes` is a compile-time constant where it is called: one
// instruction a line.
constexpr int64_t kLine = 64;  // bytes of a cache line (x86-64, most Arm cores)
template <int64_t bytes>
inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  for (int64_t b = 0; b < bytes; b += kLine) __builtin_prefetch(static_cast<const char*>(p) + b);
#endif
}

// The row reductions keep four independent accumulators: with one, every vector waits for
// the previous max or sum (a latency chain that cost about a third of manual's forward at
// 1024x1000), and the exps of consecutive vectors cannot overlap. The tail (C not a multiple
// of the vector width) is read with a masked load and blended into an accumulator.
constexpr int64_t kWays = 4;

// m_n = max_c x_nc (NaN propagates, as in F.cross_entropy).
template <typename T>
acc_t<T> row_max(const T* x, int64_t C) {
  using L = Lanes<T>;
  using A = typename L::A;
  using V = typename L::V;
  constexpr int64_t W = L::W;
  V a[kWays];
  for (auto& v : a) v = V(-std::numeric_limits<A>::infinity());
  int64_t c = 0;
  for (; c + kWays * W <= C; c += kWays * W)
    for (int64_t k = 0; k < kWays; ++k) a[k] = at::vec::maximum(a[k], L::load(x + c + k * W));
  for (; c + W <= C; c += W) a[0] = at::vec::maximum(a[0], L::load(x + c));
  if (c < C) a[1] = V::set(a[1], at::vec::maximum(a[1], L::load(x + c, C - c)), C - c);
  const V v = at::vec::maximum(at::vec::maximum(a[0], a[1]), at::vec::maximum(a[2], a[3]));
  return at::vec::vec_reduce_all<A>([](V& p, V& q) { return at::vec::maximum(p, q); }, v);
}

// s_n = sum_c exp(x_nc - m_n); with `e`, exp(x_nc - m_n) is also stored in e (fused), in
// the compute type. `next`, the row read after this one (x itself for the last one), is
// prefetched meanwhile: this pass is bound by its exps and reads x from the cache (its max
// pass just read it), the next row's max pass by memory, so the next row arrives while this
// one's exps are computed (fused_inplace's forward at one thread, float32: 6.0 -> 4.8 ms at
// 3200x3200, 9.9 -> 7.5 ms at 512x32000).
// Always inlined: where e is nullptr (manual) its stores are compiled out, not tested per
// vector (2% of manual's forward instructions when the compiler stopped inlining it).
template <typename T>
C10_ALWAYS_INLINE acc_t<T> row_sum_exp(const T* x, int64_t C, acc_t<T> m, acc_t<T>* e,
                                       const T* next) {
  using L = Lanes<T>;
  using A = typename L::A;
  using V = typename L::V;
  constexpr int64_t W = L::W;
  const V mv(m);
  V a[kWays];
  for (auto& v : a) v = V(A(0));
  int64_t c = 0;
  for (; c + kWays * W <= C; c += kWays * W) {
    prefetch<kWays * W * sizeof(T)>(next + c);
    for (int64_t k = 0; k < kWays; ++k) {
      const V v = L::exp(L::load(x + c + k * W) - mv);
      if (e) v.store(e + c + k * W);
      a[k] = a[k] + v;
    }
  }
  for (; c + W <= C; c += W) {
    const V v = L::exp(L::load(x + c) - mv);
    if (e) v.store(e + c);
    a[0] = a[0] + v;
  }
  if (c < C) {
    const V v = L::exp(L::load(x + c, C - c) - mv);
    if (e) v.store(e + c, C - c);
    a[1] = a[1] + V::set(V(A(0)), v, C - c);
  }
  const V v = (a[0] + a[1]) + (a[2] + a[3]);
  return at::vec::vec_reduce_all<A>([](V& p, V& q) { return p + q; }, v);
}

// A row whose max is not finite (a NaN, or an inf logit) has a NaN loss and gradient, as in
// F.cross_entropy (whose log-softmax is NaN there); its exps are never evaluated.
template <typename A>
bool nan_row(A m) {
  return !std::isfinite(m);
}

// m_n and log s_n of one row (log s_n NaN on a NaN row); `next` as in row_sum_exp.
template <typename T>
void row_max_log_sum_exp(const T* x, int64_t C, acc_t<T>& m, acc_t<T>& log_s, const T* next) {
  using A = acc_t<T>;
  m = row_max(x, C);
  log_s = nan_row(m) ? std::numeric_limits<A>::quiet_NaN()
                     : std::log(row_sum_exp<T>(x, C, m, nullptr, next));
}

// The number of kept rows, D.
int64_t kept_count(const std::optional<Tensor>& kept, int64_t M) {
  if (!kept) return M;
  const bool* k = kept->const_data_ptr<bool>();
  return std::count(k, k + M, true);
}

// l_n for every row (0 on ignored rows), and m_n and log s_n, in the compute type A.
template <typename T, typename A = acc_t<T>>
void loss_rows(const Tensor& x, const Tensor& t, const bool* kept, A* loss, A* m_out,
               A* log_s_out) {
  const int64_t M = x.size(0), C = x.size(1);
  const T* xp = x.const_data_ptr<T>();
  const int64_t* tp = t.const_data_ptr<int64_t>();
  at::parallel_for(0, M, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      A m, log_s;
      const T* next = xp + (n + 1 < end ? n + 1 : n) * C;  // prefetched meanwhile
      row_max_log_sum_exp(xp + n * C, C, m, log_s, next);
      loss[n] = (kept && !kept[n]) ? A(0) : (m - static_cast<A>(xp[n * C + tp[n]])) + log_s;
      m_out[n] = m;
      log_s_out[n] = log_s;
    }
  });
}

// g_n = r_n (p_n - onehot(t_n)) for every row, 0 on ignored rows; r: one value per row
// (`r_rows`) or one for all (`r_all`). Computed in A, rounded to T once.
template <typename T, typename A = acc_t<T>>
void grad_rows(const Tensor& x, const Tensor& t, const bool* kept, const A* m, const A* log_s,
               const A* r_rows, A r_all, Tensor& g) {
  using L = Lanes<T>;
  using V = typename L::V;
  const int64_t M = x.size(0), C = x.size(1);
  const T* xp = x.const_data_ptr<T>();
  const int64_t* tp = t.const_data_ptr<int64_t>();
  T* gp = g.data_ptr<T>();
  at::parallel_for(0, M, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const T* xr = xp + n * C;
      T* gr = gp + n * C;
      const A r = r_rows ? r_rows[n] : r_all;
      if (kept && !kept[n]) {
        std::fill(gr, gr + C, T(0));
        continue;
      }
      const A mm = m[n], ls = log_s[n];
      if (nan_row(mm)) {
        std::fill(gr, gr + C, T(std::numeric_limits<A>::quiet_NaN()));
        continue;
      }
      // r_n exp((x_nc - m_n) - log s_n) = r_n p_nc
      map_row([mm, ls, r](V v) { return L::exp((v - V(mm)) - V(ls)) * V(r); }, gr, xr, C);
      // - r_n [c = t_n], on r_n p_{n,t_n} in A: the value stored where T is A, else
      // computed again (the stored one is rounded to T)
      if constexpr (L::kWidened) {
        const A p_t = std::exp((static_cast<A>(xr[tp[n]]) - mm) - ls);
        gr[tp[n]] = static_cast<T>(r * p_t - r);
      } else {
        gr[tp[n]] -= r;
      }
    }
  });
}

// fused's rows: l_n as loss_rows, and g_n = r (p_n - onehot(t_n)) (0 on ignored rows) with
// one exp per logit: e = exp(x - m) summed as it is stored (s), then scaled by r / s into g.
// e is g's own row where T is its compute type, else one row of A per task (a row-sized
// scratch: the gradient is rounded to T once). g may be x itself (inplace): each row reads
// x_{n,t_n} and its max before it writes.
template <typename T, typename A = acc_t<T>>
void loss_and_grad_rows(const Tensor& x, const Tensor& t, const bool* kept, A r, A* loss,
                        Tensor& g) {
  using L = Lanes<T>;
  using V = typename L::V;
  const int64_t M = x.size(0), C = x.size(1);
  const T* xp = x.const_data_ptr<T>();  // may alias gp (inplace)
  const int64_t* tp = t.const_data_ptr<int64_t>();
  T* gp = g.data_ptr<T>();
  at::parallel_for(0, M, kGrain, [&](int64_t begin, int64_t end) {
    std::unique_ptr<A[]> scratch;
    if constexpr (L::kWidened) scratch.reset(new A[C]);
    for (int64_t n = begin; n < end; ++n) {
      const T* xr = xp + n * C;
      T* gr = gp + n * C;
      if (kept && !kept[n]) {
        std::fill(gr, gr + C, T(0));
        loss[n] = A(0);
        continue;
      }
      A* e;
      if constexpr (L::kWidened) {
        e = scratch.get();
      } else {
        e = gr;
      }
      const A m = row_max(xr, C);
      if (nan_row(m)) {
        std::fill(gr, gr + C, T(std::numeric_limits<A>::quiet_NaN()));
        loss[n] = m - m;  // NaN
        continue;
      }
      const A shifted_t = m - static_cast<A>(xr[tp[n]]);  // m_n - x_{n,t_n} >= 0
      // s_n = sum_c exp(x_nc - m_n), with exp(x_nc - m_n) stored in e
      const A s = row_sum_exp(xr, C, m, e, n + 1 < end ? xr + C : xr);
      loss[n] = shifted_t + std::log(s);
      const A k = r / s;  // r_n p_nc = (r_n / s_n) exp(x_nc - m_n)
      const A e_t = e[tp[n]];  // read before e (g's row) is scaled
      map_row([k](V v) { return v * V(k); }, gr, e, C);
      gr[tp[n]] = static_cast<T>(k * e_t - r);  // - r_n [c = t_n]
    }
  });
}

// The reduced loss from the rows (in the compute type) as a tensor of `dtype`: the rows
// themselves (none), or their sum (sum) or sum / D (mean; 0 / 0 = NaN when nothing is kept,
// as F), accumulated in float64 so that the mean of many rows keeps its digits.
Tensor reduce_rows(const Tensor& rows, Reduction reduction, int64_t D, at::ScalarType dtype) {
  if (reduction == Reduction::None) return rows.to(dtype);
  double total = 0.0;
  AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "softmaxloss_reduce", [&] {
    const scalar_t* r = rows.const_data_ptr<scalar_t>();
    for (int64_t n = 0; n < rows.size(0); ++n) total += r[n];
  });
  if (reduction == Reduction::Mean) total /= static_cast<double>(D);
  return at::scalar_tensor(total, rows.options().dtype(dtype));
}

const bool* kept_ptr(const std::optional<Tensor>& kept) {
  return kept ? kept->const_data_ptr<bool>() : nullptr;
}

// The compute dtype of logits of `dtype` (acc_t's): float32 for bfloat16/float16.
at::ScalarType acc_dtype(at::ScalarType dtype) { return at::toOpMathType(dtype); }

// The logits' dtypes: the floating types and bfloat16, float16.
#define SOFTMAXLOSS_DISPATCH(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, TYPE, NAME, __VA_ARGS__)

// r_n from the incoming gradient: one value (mean, sum) or one per row (none, in the
// compute dtype).
struct Scale {
  Tensor rows;  // (M,) for none
  double all = 1.0;
};

Scale row_scale(const Tensor& grad_output, Reduction reduction, int64_t D) {
  Scale s;
  if (reduction == Reduction::None) {
    s.rows = grad_output.to(acc_dtype(grad_output.scalar_type())).contiguous();
  } else {
    s.all = grad_output.item<double>();
    if (reduction == Reduction::Mean) s.all /= static_cast<double>(D);
  }
  return s;
}

// The reduction a node saved (autograd's saved_data holds integers).
Reduction saved_reduction(AutogradContext* ctx) {
  return static_cast<Reduction>(ctx->saved_data["reduction"].toInt());
}

// manual: forward keeps per-row m_n and log s_n (nothing logits-sized); backward
// recomputes p from them in one pass.
struct ManualCpu : public torch::autograd::Function<ManualCpu> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& t,
                        const std::optional<Tensor>& kept, Reduction reduction) {
    const int64_t M = x.size(0), D = kept_count(kept, M);
    const auto rows = x.options().dtype(acc_dtype(x.scalar_type()));
    Tensor loss = at::empty({M}, rows), m = at::empty({M}, rows), log_s = at::empty({M}, rows);
    SOFTMAXLOSS_DISPATCH(x.scalar_type(), "softmaxloss_manual_forward", [&] {
      using A = acc_t<scalar_t>;
      loss_rows<scalar_t>(x, t, kept_ptr(kept), loss.data_ptr<A>(), m.data_ptr<A>(),
                          log_s.data_ptr<A>());
    });
    ctx->save_for_backward({x, t, kept.value_or(Tensor()), m, log_s});
    ctx->saved_data["reduction"] = value_of(reduction);
    ctx->saved_data["D"] = D;
    return reduce_rows(loss, reduction, D, x.scalar_type());
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    refuse_double_backward();
    auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &t = saved[1], &kept = saved[2], &m = saved[3], &log_s = saved[4];
    std::optional<Tensor> kept_opt = kept.defined() ? std::optional<Tensor>(kept) : std::nullopt;
    const Reduction reduction = saved_reduction(ctx);
    const int64_t D = ctx->saved_data["D"].toInt();
    Tensor g = at::empty_like(x);
    Scale s = row_scale(grads[0], reduction, D);
    SOFTMAXLOSS_DISPATCH(x.scalar_type(), "softmaxloss_manual_backward", [&] {
      using A = acc_t<scalar_t>;
      const A* r_rows = reduction == Reduction::None ? s.rows.const_data_ptr<A>() : nullptr;
      grad_rows<scalar_t>(x, t, kept_ptr(kept_opt), m.const_data_ptr<A>(),
                          log_s.const_data_ptr<A>(), r_rows, static_cast<A>(s.all), g);
    });
    return {g, Tensor(), Tensor(), Tensor()};
  }
};

// fused: forward builds the gradient for grad_output = 1, g = r (p - onehot(t)), in one
// buffer of the logits' dtype (with `inplace`, the logits' own storage: their version
// counter is bumped, so a node that saved them raises at backward instead of reading the
// gradient); backward scales it (or hands it over as it is when grad_output is 1).
struct FusedCpu : public torch::autograd::Function<FusedCpu> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& t,
                        const std::optional<Tensor>& kept, Reduction reduction, bool inplace) {
    const int64_t M = x.size(0), D = kept_count(kept, M);
    Tensor loss = at::empty({M}, x.options().dtype(acc_dtype(x.scalar_type())));
    Tensor g = inplace ? x : at::empty_like(x);
    if (inplace) torch::autograd::impl::bump_version(x);
    // r_n before grad_output: 1 / D (mean), 1 (sum, none)
    const double r = reduction == Reduction::Mean ? 1.0 / static_cast<double>(D) : 1.0;
    SOFTMAXLOSS_DISPATCH(x.scalar_type(), "softmaxloss_fused_forward", [&] {
      using A = acc_t<scalar_t>;
      loss_and_grad_rows<scalar_t>(x, t, kept_ptr(kept), static_cast<A>(r), loss.data_ptr<A>(),
                                   g);
    });
    ctx->save_for_backward({g});
    ctx->saved_data["reduction"] = value_of(reduction);
    ctx->saved_data["inplace"] = inplace;
    return reduce_rows(loss, reduction, D, x.scalar_type());
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    refuse_double_backward();
    Tensor g = ctx->get_saved_variables()[0];
    const Tensor& go = grads[0];
    if (saved_reduction(ctx) == Reduction::None) {
      g = g * go.unsqueeze(1);
    } else if (go.item<double>() != 1.0) {
      g = g * go;
    } else if (ctx->saved_data["inplace"].toBool()) {
      // grad_output 1 (a plain loss.backward()): hand g over. With inplace, g is the
      // caller's logits tensor, which autograd would copy before keeping it as a .grad: a
      // new tensor over its storage it keeps as is.
      g = g.alias();
    }
    // else g itself: kept as a .grad without a copy once this node has released its saved
    // variables, copied while they are kept (retain_graph=True: a later backward reads g)
    return {g, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// The Python caller's contract, checked (a wrong layout would read out of bounds).
void check_contract(const Tensor& x, const Tensor& t, const std::optional<Tensor>& kept) {
  const auto dtype = x.scalar_type();
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.is_contiguous() &&
                  (dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 ||
                   dtype == at::kHalf),
              "x must be contiguous (M, C) float32/float64/bfloat16/float16 CPU logits");
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 1 && t.size(0) == x.size(0) &&
                  t.is_contiguous() && t.scalar_type() == at::kLong,
              "t must be contiguous (M,) int64 CPU class indices");
  TORCH_CHECK(!kept || (kept->scalar_type() == at::kBool && kept->is_contiguous() &&
                        kept->dim() == 1 && kept->size(0) == x.size(0)),
              "kept must be a contiguous (M,) bool mask");
  // the row loops index x[n, t_n]: an index outside [0, C) would read out of bounds
  const int64_t *tp = t.const_data_ptr<int64_t>(), C = x.size(1);
  TORCH_CHECK(std::all_of(tp, tp + t.size(0), [C](int64_t v) { return v >= 0 && v < C; }),
              "t must hold class indices in [0, C) (ignored rows pointed at a valid class)");
}

Tensor manual(const Tensor& x, const Tensor& t, const std::optional<Tensor>& kept,
              int64_t reduction) {
  const Reduction r = reduction_of(reduction);
  check_contract(x, t, kept);
  return ManualCpu::apply(x, t, kept, r);
}

Tensor fused(const Tensor& x, const Tensor& t, const std::optional<Tensor>& kept,
             int64_t reduction, bool inplace) {
  const Reduction r = reduction_of(reduction);
  check_contract(x, t, kept);
  return FusedCpu::apply(x, t, kept, r, inplace);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
  mod.def("manual", &manual, "manual (ManualCpu): loss, hand-written backward",
          pybind11::arg("x"), pybind11::arg("t"), pybind11::arg("kept"),
          pybind11::arg("reduction"));
  mod.def("fused", &fused, "fused (FusedCpu): loss, gradient built in forward (inplace: in x)",
          pybind11::arg("x"), pybind11::arg("t"), pybind11::arg("kept"),
          pybind11::arg("reduction"), pybind11::arg("inplace") = false);
  pybind11::dict values;
  values["NONE"] = value_of(Reduction::None);
  values["MEAN"] = value_of(Reduction::Mean);
  values["SUM"] = value_of(Reduction::Sum);
  mod.attr("REDUCTION_VALUES") = values;
}
