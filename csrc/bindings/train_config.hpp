// The trainer's settings from a Python dict (train.cpp); train_many's bindings share it.
#pragma once

#include <pybind11/pybind11.h>

#include "trainer/trainer.hpp"

namespace evozero::bindings {

// Every field of trainer::TrainConfig by name, nothing else; throws ValueError.
trainer::TrainConfig train_config_from(const pybind11::dict& d);

}  // namespace evozero::bindings
