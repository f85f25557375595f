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

// The bound env: the core's VecEnv and what step_gym reuses from call to call.
class BoundVecEnv {
 public:
  explicit BoundVecEnv(std::unique_ptr<minatar::VecEnv> e)
      : env_(std::move(e)),
        obs_pool_(std::make_shared<BufferPool>(std::size_t(env_->num_envs()) * env_->obs_size())),
        actions_(env_->num_envs()),
        final_rows_(std::size_t(env_->num_envs()) * env_->obs_size()),
        final_arrays_(env_->num_envs(), nullptr) {}
  ~BoundVecEnv() {
    for (PyObject* a : final_arrays_) Py_XDECREF(a);
  }
  BoundVecEnv(const BoundVecEnv&) = delete;
  BoundVecEnv& operator=(const BoundVecEnv&) = delete;

  minatar::VecEnv& env() const { return *env_; }
  // Room for actions converted to int64.
  int64_t* action_buffer() { return actions_.data(); }
  // A new (num_envs, 10, 10, C) bool array, on pooled memory.
  py::array new_obs() {
    return obs_pool_->bool_array({env_->num_envs(), 10, 10, env_->channels()});
  }

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

  // Sets mask[i] for the envs that ended, leaves the others (zeroed by the caller).
  void mark_ended(uint8_t* mask) const {
    for (int i : ended_) mask[i] = 1;
  }

  // Sets items[i] to a new reference to env i's final observation (from final_rows) for
  // each env that ended, to None for the others. Each goes out in an array the caller
  // gets for itself: the one env i's last final observation went out in if the caller
  // has dropped it, else a new one. Making a numpy array costs several times filling
  // one, and a batch of 4096 breakout envs ends ~360 episodes a step.
  void put_final_obs(PyObject** items) {
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
      if (!reusable(slot)) {
        PyObject* fresh = new_final_array();
        Py_XDECREF(slot);  // the caller's now, if they kept it
        slot = fresh;
      }
      std::memcpy(py::detail::array_proxy(slot)->data, row, size);
      row += size;
    }
    const int n = env_->num_envs();
    for (int i = 0; i < n; ++i) {
      Py_XDECREF(items[i]);  // numpy fills a new object array with NULL or None
      Py_INCREF(Py_None);
      items[i] = Py_None;
    }
    for (int i : ended_) {
      Py_DECREF(Py_None);
      Py_INCREF(final_arrays_[i]);
      items[i] = final_arrays_[i];
    }
  }

 private:
  PyObject* new_final_array() const {
    auto& api = py::detail::npy_api::get();
    py::ssize_t dims[3] = {10, 10, env_->channels()};
    PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_api::NPY_BOOL_);
    PyObject* a =  // steals descr
        api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, 3, dims, nullptr, nullptr, 0, nullptr);
    if (!a) throw py::error_already_set();
    return a;
  }

  static PyObject** weaklist(PyObject* a) {
    const Py_ssize_t offset = Py_TYPE(a)->tp_weaklistoffset;
    return offset > 0 ? reinterpret_cast<PyObject**>(reinterpret_cast<char*>(a) + offset)
                      : nullptr;
  }

  // Whether final_arrays_ alone holds `a` (no reference, view, buffer or weak reference
  // elsewhere; the GIL is held) and it is still the array it was made as, so that
  // writing it again cannot be seen.
  bool reusable(PyObject* a) const {
    if (!a || Py_REFCNT(a) != 1) return false;
    if (PyObject** refs = weaklist(a); refs && *refs) return false;
    const auto* p = py::detail::array_proxy(a);
    constexpr int kFlags = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                           py::detail::npy_api::NPY_ARRAY_OWNDATA_ |
                           py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return Py_TYPE(a) == py::detail::npy_api::get().PyArray_Type_ && p->nd == 3 &&
           p->dimensions[0] == 10 && p->dimensions[1] == 10 &&
           p->dimensions[2] == env_->channels() && (p->flags & kFlags) == kFlags &&
           py::detail::array_descriptor_proxy(p->descr)->type_num ==
               py::detail::npy_api::NPY_BOOL_;
  }

  std::unique_ptr<minatar::VecEnv> env_;
  std::shared_ptr<BufferPool> obs_pool_;
  std::vector<int64_t> actions_;
  std::vector<uint8_t> final_rows_;
  std::vector<PyObject*> final_arrays_;  // owned references; null until env i first ends
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

// One gymnasium step: new arrays (obs, reward, terminated, truncated) and, when an env
// ended, the object array of final observations (None for the others: gymnasium's layout)
// with the ended mask; (None, None) otherwise.
py::tuple step_gym(BoundVecEnv& b, const py::handle& actions) {
  minatar::VecEnv& e = b.env();
  const int n = e.num_envs();
  const int64_t* a = checked_actions(b, actions);
  py::array obs = b.new_obs();
  py::array_t<float> reward(n);
  py::array_t<bool> terminated(n), truncated(n);
  auto* term = reinterpret_cast<uint8_t*>(terminated.mutable_data());
  auto* trunc = reinterpret_cast<uint8_t*>(truncated.mutable_data());
  without_gil(e, [&] {
    e.step(a, {static_cast<uint8_t*>(obs.mutable_data()), reward.mutable_data(), term, trunc,
               b.final_rows(), /*pack_final_obs=*/true});
  });
  if (b.collect_ended(term, trunc) == 0)
    return py::make_tuple(obs, reward, terminated, truncated, py::none(), py::none());
  py::array_t<bool> ended(n);
  auto* mask = reinterpret_cast<uint8_t*>(ended.mutable_data());
  std::memset(mask, 0, n);
  b.mark_ended(mask);
  py::array final_obs(py::dtype(py::detail::npy_api::NPY_OBJECT_), std::vector<py::ssize_t>{n});
  b.put_final_obs(static_cast<PyObject**>(final_obs.mutable_data()));
  return py::make_tuple(obs, reward, terminated, truncated, final_obs, ended);
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
