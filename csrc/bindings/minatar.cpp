// The batched MinAtar games (evozero.envs wraps them as gymnasium envs).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "bindings/arrays.hpp"
#include "bindings/module.hpp"
#include "minatar/vec_env.hpp"

namespace evozero::bindings {

namespace {

// From this many envs a step releases the GIL; below, the step takes about as long as
// releasing and retaking it.
constexpr int kReleaseGilFrom = 64;

// A bool array's buffer as the core reads and writes it: uint8 0/1.
uint8_t* bool_buffer(py::array& a, py::ssize_t size, const char* name) {
  return reinterpret_cast<uint8_t*>(checked<bool>(a, size, name));
}

// The observations of all envs.
uint8_t* obs_buffer(py::array& obs, const minatar::VecEnv& e, const char* name = "obs") {
  return bool_buffer(obs, py::ssize_t(e.num_envs()) * e.obs_size(), name);
}

// Memory for the observation arrays step_gym returns. Each is a new array that the
// caller owns and the env never writes again; the pool only takes back the memory of
// arrays the caller has dropped. Without it, every step of a large batch would write
// into fresh pages from the OS (np.empty of a few MiB is mmap'd), which costs several
// times the step itself.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  explicit BufferPool(std::size_t bytes) : bytes_(bytes) {}
  ~BufferPool() {
    for (void* p : free_) std::free(p);
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A new C-contiguous bool array of `shape` (bytes_ elements) on pooled memory.
  py::array bool_array(const std::vector<py::ssize_t>& shape) {
    auto lease = std::make_unique<Lease>(shared_from_this());
    void* data = lease->data;
    // The capsule owns the lease: the memory goes back to the pool when numpy drops the
    // array and every view of it.
    py::capsule owner(lease.get(), [](void* p) { delete static_cast<Lease*>(p); });
    lease.release();
    return py::array(py::dtype::of<bool>(), shape, data, owner);
  }

 private:
  struct Lease {
    explicit Lease(std::shared_ptr<BufferPool> p) : pool(std::move(p)), data(pool->take()) {}
    ~Lease() { pool->give_back(data); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    std::shared_ptr<BufferPool> pool;
    void* data;
  };
  // Free buffers kept for reuse: a loop that drops the previous step's arrays needs one.
  static constexpr std::size_t kMaxFree = 2;

  void* take() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        void* p = free_.back();
        free_.pop_back();
        return p;
      }
    }
    void* p = std::malloc(bytes_ ? bytes_ : 1);
    if (!p) throw std::bad_alloc();
    return p;
  }

  void give_back(void* p) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (free_.size() < kMaxFree) {
        free_.push_back(p);
        return;
      }
    }
    std::free(p);
  }

  std::size_t bytes_;
  std::mutex mutex_;
  std::vector<void*> free_;
};

PyObject** weaklist(PyObject* a) {
  const Py_ssize_t offset = Py_TYPE(a)->tp_weaklistoffset;
  return offset > 0 ? reinterpret_cast<PyObject**>(reinterpret_cast<char*>(a) + offset)
                    : nullptr;
}

// Whether only its one holder here can reach array `a` (no other reference, view, buffer or
// weak reference; the GIL is held) and it is still what it was made as (C-contiguous,
// writeable, of these dims and dtype), so that writing it again cannot be seen.
bool unshared(PyObject* a, const std::vector<py::ssize_t>& dims, int type_num) {
  if (!a || Py_REFCNT(a) != 1) return false;
  if (PyObject** refs = weaklist(a); refs && *refs) return false;
  const auto* p = py::detail::array_proxy(a);
  if (Py_TYPE(a) != py::detail::npy_api::get().PyArray_Type_ ||
      p->nd != static_cast<int>(dims.size()) ||
      py::detail::array_descriptor_proxy(p->descr)->type_num != type_num)
    return false;
  for (std::size_t d = 0; d < dims.size(); ++d)
    if (p->dimensions[d] != dims[d]) return false;
  constexpr int kFlags =
      py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return (p->flags & kFlags) == kFlags;
}

// A new C-contiguous array on numpy's own memory (a new reference).
PyObject* new_array(const std::vector<py::ssize_t>& dims, int type_num) {
  auto& api = py::detail::npy_api::get();
  PyObject* descr = api.PyArray_DescrFromType_(type_num);
  PyObject* a = api.PyArray_NewFromDescr_(  // steals descr
      api.PyArray_Type_, descr, static_cast<int>(dims.size()), dims.data(), nullptr, nullptr, 0,
      nullptr);
  if (!a) throw py::error_already_set();
  return a;
}

void* data_of(PyObject* a) { return py::detail::array_proxy(a)->data; }

// The last arrays of one kind (dims, dtype) that step_gym handed out, handed out again once
// the caller has dropped them: then no one can see it (unshared). Making and freeing numpy
// arrays costs more than filling them: at 256 envs, asterix's step() spent about a tenth of
// its time on the five or six arrays of each step.
class ArrayRing {
 public:
  ArrayRing(std::vector<py::ssize_t> dims, int type_num)
      : dims_(std::move(dims)), type_num_(type_num) {}
  ~ArrayRing() {
    for (PyObject* a : slots_) Py_XDECREF(a);
  }
  ArrayRing(const ArrayRing&) = delete;
  ArrayRing& operator=(const ArrayRing&) = delete;

  // An array of the ring's kind that the caller is the only one to hold (a new reference;
  // what it holds is what it last held); `make()` makes one (a new reference) when none of
  // the ring's is free.
  template <class Make>
  py::array take(Make&& make) {
    for (int k = 0; k < kSlots; ++k) {
      const int j = (next_ + k) % kSlots;
      if (unshared(slots_[j], dims_, type_num_)) return hand_out(j);
    }
    PyObject* fresh = make();
    Py_XDECREF(slots_[next_]);  // the caller's now, if they kept it
    slots_[next_] = fresh;
    return hand_out(next_);
  }
  // The same with numpy's own memory.
  py::array take() {
    return take([this] { return new_array(dims_, type_num_); });
  }

 private:
  // A loop that keeps a step's results until the next step returns needs two.
  static constexpr int kSlots = 2;

  py::array hand_out(int j) {
    next_ = (j + 1) % kSlots;
    return py::reinterpret_borrow<py::array>(slots_[j]);
  }

  std::vector<py::ssize_t> dims_;
  int type_num_;
  PyObject* slots_[kSlots] = {};
  int next_ = 0;
};

// The bound env: the core's VecEnv and what step_gym reuses from call to call.
class BoundVecEnv {
 public:
  explicit BoundVecEnv(std::unique_ptr<minatar::VecEnv> e)
      : env_(std::move(e)),
        obs_pool_(std::make_shared<BufferPool>(std::size_t(env_->num_envs()) * env_->obs_size())),
        obs_ring_({env_->num_envs(), 10, 10, env_->channels()}, kBool),
        reward_ring_({env_->num_envs()}, py::detail::npy_api::NPY_FLOAT_),
        terminated_ring_({env_->num_envs()}, kBool),
        truncated_ring_({env_->num_envs()}, kBool),
        ended_ring_({env_->num_envs()}, kBool),
        final_obs_ring_({env_->num_envs()}, py::detail::npy_api::NPY_OBJECT_),
        actions_(env_->num_envs()),
        final_rows_(std::size_t(env_->num_envs()) * env_->obs_size()),
        final_arrays_(env_->num_envs(), nullptr),
        final_dims_({10, 10, env_->channels()}) {}
  ~BoundVecEnv() {
    for (PyObject* a : final_arrays_) Py_XDECREF(a);
  }
  BoundVecEnv(const BoundVecEnv&) = delete;
  BoundVecEnv& operator=(const BoundVecEnv&) = delete;

  minatar::VecEnv& env() const { return *env_; }
  // Room for actions converted to int64.
  int64_t* action_buffer() { return actions_.data(); }

  // The arrays of one step's results, each the caller's alone (see ArrayRing); their
  // contents are stale: the step overwrites them.
  py::array obs() {
    return obs_ring_.take([this] {
      return obs_pool_->bool_array({env_->num_envs(), 10, 10, env_->channels()}).release().ptr();
    });
  }
  py::array reward() { return reward_ring_.take(); }
  py::array terminated() { return terminated_ring_.take(); }
  py::array truncated() { return truncated_ring_.take(); }

  // Where the core writes final observations, packed: row j for the j-th env that ended.
  uint8_t* final_rows() { return final_rows_.data(); }

  // Collects the envs that ended this step; returns how many.
  int collect_ended(const uint8_t* terminated, const uint8_t* truncated) {
    ended_.clear();
    const int n = env_->num_envs();  // a virtual call: not in the loop condition
    for (int i = 0; i < n; ++i)
      if (terminated[i] | truncated[i]) ended_.push_back(i);
    return static_cast<int>(ended_.size());
  }

  // The mask of the envs that ended.
  py::array ended_mask() {
    py::array mask = ended_ring_.take();
    auto* m = static_cast<uint8_t*>(data_of(mask.ptr()));
    std::memset(m, 0, env_->num_envs());
    for (int i : ended_) m[i] = 1;
    return mask;
  }

  // The object array of final observations: for each env that ended, a new reference to
  // its final observation (from final_rows), None for the others. Each goes out in an
  // array the caller gets for itself: the one env i's last final observation went out in
  // if the caller has dropped it, else a new one. Making a numpy array costs several
  // times filling one, and a batch of 4096 breakout envs ends ~360 episodes a step.
  py::array final_obs() {
    py::array out = final_obs_ring_.take();
    // A new object array holds NULL or None; one handed out before, what it last held (or
    // what the caller put there): its references go first, so that the final observations
    // only it still held can be written again below.
    auto** items = static_cast<PyObject**>(data_of(out.ptr()));
    const int n = env_->num_envs();
    for (int i = 0; i < n; ++i)
      if (items[i] != Py_None) {
        Py_XDECREF(items[i]);
        Py_INCREF(Py_None);
        items[i] = Py_None;
      }
    // After a large step the cached arrays are out of cache: load them all before using
    // any, so that the misses overlap (the header first, then what it points to).
    for (int i : ended_)
      if (PyObject* a = final_arrays_[i]) __builtin_prefetch(a);
    for (int i : ended_)
      if (PyObject* a = final_arrays_[i]) {
        __builtin_prefetch(py::detail::array_proxy(a)->dimensions);
        __builtin_prefetch(weaklist(a));
      }
    const std::size_t size = env_->obs_size();
    const uint8_t* row = final_rows_.data();
    for (int i : ended_) {
      PyObject*& slot = final_arrays_[i];
      if (!unshared(slot, final_dims_, kBool)) {
        PyObject* fresh = new_array(final_dims_, kBool);
        Py_XDECREF(slot);  // the caller's now, if they kept it
        slot = fresh;
      }
      std::memcpy(data_of(slot), row, size);
      row += size;
      Py_DECREF(Py_None);
      Py_INCREF(slot);
      items[i] = slot;
    }
    return out;
  }

 private:
  static constexpr int kBool = py::detail::npy_api::NPY_BOOL_;

  std::unique_ptr<minatar::VecEnv> env_;
  std::shared_ptr<BufferPool> obs_pool_;
  ArrayRing obs_ring_, reward_ring_, terminated_ring_, truncated_ring_, ended_ring_,
      final_obs_ring_;
  std::vector<int64_t> actions_;
  std::vector<uint8_t> final_rows_;
  std::vector<PyObject*> final_arrays_;  // owned references; null until env i first ends
  std::vector<py::ssize_t> final_dims_;
  std::vector<int> ended_;
};

[[noreturn]] void bad_action(const BoundVecEnv& b, py::ssize_t i, const std::string& value) {
  const int k = b.env().num_actions();
  throw py::value_error("action " + value + " of env " + std::to_string(i) +
                        " is out of range: this env has " + std::to_string(k) + " actions (0.." +
                        std::to_string(k - 1) + ")");
}

// Raises for the first action outside [0, num_actions); one branch-free pass otherwise.
void check_range(const BoundVecEnv& b, const int64_t* v) {
  const int n = b.env().num_envs();
  const auto k = static_cast<uint64_t>(b.env().num_actions());
  bool bad = false;
  for (int i = 0; i < n; ++i) bad |= static_cast<uint64_t>(v[i]) >= k;  // negatives wrap
  if (bad)
    for (int i = 0; i < n; ++i)
      if (static_cast<uint64_t>(v[i]) >= k) bad_action(b, i, std::to_string(v[i]));
}

// Copies an integer array of dtype T (any strides or byte order) into out, range-checked.
template <class T>
void convert_actions(const BoundVecEnv& b, const py::array& a, int64_t* out) {
  auto c = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!c)
    throw py::value_error("actions could not be read as " +
                          py::str(a.dtype()).cast<std::string>());
  const T* v = c.data();
  const auto k = static_cast<uint64_t>(b.env().num_actions());
  for (py::ssize_t i = 0; i < c.size(); ++i) {
    if (static_cast<uint64_t>(v[i]) >= k) bad_action(b, i, std::to_string(v[i]));  // < 0 wraps
    out[i] = static_cast<int64_t>(v[i]);
  }
}

// The actions of one step as indices into the action set: one integer per env, each in
// [0, num_actions). The one place these rules live; every violation is one ValueError.
const int64_t* checked_actions(BoundVecEnv& b, const py::handle& obj) {
  const py::ssize_t n = b.env().num_envs();
  py::array a = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj)
                                                : py::array::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw py::value_error("actions must be an array of integers, one per env; got " +
                          py::repr(obj).cast<std::string>());
  }
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error("actions must have shape (" + std::to_string(n) +
                          ",), one per env; got shape " +
                          py::str(a.attr("shape")).cast<std::string>());
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::value_error("actions must be integers, got dtype " +
                          py::str(a.dtype()).cast<std::string>());
  if (py::isinstance<py::array_t<int64_t>>(a) && (a.flags() & py::array::c_style)) {
    const auto* v = static_cast<const int64_t*>(a.data());
    check_range(b, v);
    return v;  // `a` stays alive in the caller's `obj`
  }
  int64_t* out = b.action_buffer();
  const bool is_signed = kind == 'i';
  switch (a.itemsize()) {
    case 1: is_signed ? convert_actions<int8_t>(b, a, out) : convert_actions<uint8_t>(b, a, out);
      break;
    case 2: is_signed ? convert_actions<int16_t>(b, a, out) : convert_actions<uint16_t>(b, a, out);
      break;
    case 4: is_signed ? convert_actions<int32_t>(b, a, out) : convert_actions<uint32_t>(b, a, out);
      break;
    case 8: is_signed ? convert_actions<int64_t>(b, a, out) : convert_actions<uint64_t>(b, a, out);
      break;
    default:
      throw py::value_error("actions must be integers of at most 64 bits, got dtype " +
                            py::str(a.dtype()).cast<std::string>());
  }
  return out;
}

// Runs f with the GIL released when the batch is large enough for that to pay.
template <class F>
void without_gil(const minatar::VecEnv& e, F&& f) {
  if (e.num_envs() >= kReleaseGilFrom) {
    py::gil_scoped_release release;
    f();
  } else {
    f();
  }
}

// One gymnasium step: (obs, reward, terminated, truncated, info), new arrays the caller
// owns; info is {} unless an env ended, else gymnasium's SAME_STEP layout: the object
// array of final observations (None for the envs that did not end) and the ended mask.
py::tuple step_gym(BoundVecEnv& b, const py::handle& actions) {
  minatar::VecEnv& e = b.env();
  const int64_t* a = checked_actions(b, actions);
  py::array obs = b.obs(), reward = b.reward(), terminated = b.terminated(),
            truncated = b.truncated();
  auto* term = static_cast<uint8_t*>(data_of(terminated.ptr()));
  auto* trunc = static_cast<uint8_t*>(data_of(truncated.ptr()));
  const minatar::StepOutput out{static_cast<uint8_t*>(data_of(obs.ptr())),
                                static_cast<float*>(data_of(reward.ptr())), term, trunc,
                                b.final_rows(), /*pack_final_obs=*/true};
  without_gil(e, [&] { e.step(a, out); });
  py::dict info;
  if (b.collect_ended(term, trunc) > 0) {
    // Interned once and kept for the life of the process: a key made per step costs more
    // than the dict.
    static PyObject* const kFinalObs = PyUnicode_InternFromString("final_obs");
    static PyObject* const kFinalObsMask = PyUnicode_InternFromString("_final_obs");
    static PyObject* const kFinalInfo = PyUnicode_InternFromString("final_info");
    static PyObject* const kFinalInfoMask = PyUnicode_InternFromString("_final_info");
    py::array ended = b.ended_mask();
    const py::object items[] = {b.final_obs(), ended, py::dict(), ended};
    PyObject* const keys[] = {kFinalObs, kFinalObsMask, kFinalInfo, kFinalInfoMask};
    for (int k = 0; k < 4; ++k)
      if (!keys[k] || PyDict_SetItem(info.ptr(), keys[k], items[k].ptr()) != 0)
        throw py::error_already_set();
  }
  return py::make_tuple(obs, reward, terminated, truncated, info);
}

}  // namespace

void bind_minatar(py::module_& m) {
  using minatar::VecEnv;
  m.attr("GAMES") = minatar::game_names();
  m.def(
      "active_cells",
      [](py::array obs) {
        if (obs.ndim() < 2) throw py::value_error("obs must have shape (num_envs, ...)");
        const auto n = obs.shape(0);
        const auto size = n ? obs.size() / n : 0;
        const uint8_t* o = bool_buffer(obs, obs.size(), "obs");
        py::array_t<int64_t> indptr(n + 1);
        py::array_t<int32_t> indices(obs.size());
        int64_t nnz;
        {
          py::gil_scoped_release release;
          nnz = minatar::active_cells(o, int(n), int(size), indptr.mutable_data(),
                                      indices.mutable_data());
        }
        indices.resize({nnz});
        return py::make_tuple(indptr, indices);
      },
      py::arg("obs"), "CSR indices of the active cells of a batch of observations.");

  // Every option is required: evozero.envs.MinAtarVecEnv holds the defaults.
  py::class_<BoundVecEnv>(m, "MinAtarVecEnv", "Batched native MinAtar games (see evozero.envs).")
      .def(py::init([](const std::string& game, int num_envs, double sticky, bool ramping,
                       bool minimal, int64_t max_steps) {
             minatar::EnvOptions o{sticky, ramping, minimal, max_steps};
             return std::make_unique<BoundVecEnv>(minatar::make_vec_env(game, num_envs, o));
           }),
           py::arg("game"), py::arg("num_envs"), py::arg("sticky_action_prob"),
           py::arg("difficulty_ramping"), py::arg("minimal_action_set"),
           py::arg("max_episode_steps"))
      .def_property_readonly("game", [](const BoundVecEnv& b) { return b.env().game(); })
      .def_property_readonly("num_envs", [](const BoundVecEnv& b) { return b.env().num_envs(); })
      .def_property_readonly("channels", [](const BoundVecEnv& b) { return b.env().channels(); })
      .def_property_readonly("num_actions",
                             [](const BoundVecEnv& b) { return b.env().num_actions(); })
      .def_property_readonly("action_set",
                             [](const BoundVecEnv& b) { return b.env().action_set(); })
      .def_property_readonly("channel_names",
                             [](const BoundVecEnv& b) { return b.env().channel_names(); })
      .def(
          "reset",
          [](BoundVecEnv& b, py::array seeds, py::array obs) {
            const uint32_t* s = checked<uint32_t>(seeds, b.env().num_envs(), "seeds");
            uint8_t* o = obs_buffer(obs, b.env());
            py::gil_scoped_release release;
            b.env().reset(s, o);
          },
          py::arg("seeds"), py::arg("obs"))
      .def(
          "step",
          [](BoundVecEnv& b, py::array actions, py::array obs, py::array reward,
             py::array terminated, py::array truncated, py::object final_obs) {
            VecEnv& e = b.env();
            const py::ssize_t n = e.num_envs();
            const int64_t* a = checked<int64_t>(actions, n, "actions");
            check_range(b, a);
            minatar::StepOutput out{obs_buffer(obs, e), checked<float>(reward, n, "reward"),
                                    bool_buffer(terminated, n, "terminated"),
                                    bool_buffer(truncated, n, "truncated"), nullptr};
            if (!final_obs.is_none()) {
              py::array f = final_obs.cast<py::array>();
              out.final_obs = obs_buffer(f, e, "final_obs");
            }
            without_gil(e, [&] { e.step(a, out); });
          },
          py::arg("actions"), py::arg("obs"), py::arg("reward"), py::arg("terminated"),
          py::arg("truncated"), py::arg("final_obs") = py::none(),
          "Steps into the caller's buffers (the raw path: no new arrays).")
      .def("step_gym", &step_gym, py::arg("actions"),
           "Steps and returns new arrays: (obs, reward, terminated, truncated, final_obs, "
           "ended); the last two are None unless an env ended (see evozero.envs).")
      .def(
          "restart",
          [](BoundVecEnv& b, py::array obs) {
            uint8_t* o = obs_buffer(obs, b.env());
            py::gil_scoped_release release;
            b.env().restart(o);
          },
          py::arg("obs"))
      .def(
          "observe",
          [](const BoundVecEnv& b, py::array obs) {
            uint8_t* o = obs_buffer(obs, b.env());
            py::gil_scoped_release release;
            b.env().observe(o);
          },
          py::arg("obs"));
}

}  // namespace evozero::bindings
