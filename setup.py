"""Builds the native core `evozero._core` from csrc/.

Portable by default: -O3 with no host-specific flags; hot loops use GCC
function multi-versioning for runtime dispatch. Set EVOZERO_NATIVE=1 to add
-march=native for a build that only has to run on this machine.
"""

import os
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ParallelCompile("EVOZERO_BUILD_JOBS", default=0).install()

extra = ["-O3", "-fvisibility=hidden", "-Wall", "-Wextra"]
if os.environ.get("EVOZERO_NATIVE") == "1":
    extra.append("-march=native")
if os.environ.get("EVOZERO_SANITIZE") == "1":
    extra += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]

ext = Pybind11Extension(
    "evozero._core",
    sorted(glob("csrc/**/*.cpp", recursive=True)),
    # Headers too, so that a changed header (csrc/generated/ after a codegen run) rebuilds.
    depends=sorted(glob("csrc/**/*.hpp", recursive=True)),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=extra,
    extra_link_args=["-fsanitize=address,undefined"]
    if os.environ.get("EVOZERO_SANITIZE") == "1"
    else [],
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
