"""Builds the native core `evozero._core` from csrc/, and optionally `evozero._cuda`.

Portable by default: -O3 with no host-specific flags; hot loops use GCC
function multi-versioning for runtime dispatch. Set EVOZERO_NATIVE=1 to add
-march=native for a build that only has to run on this machine.

EVOZERO_CUDA=1 also builds `evozero._cuda` (csrc/cuda/: GPU envs and op kernels) with
nvcc: $NVCC (NVCC=wheel: the nvidia-cuda-nvcc wheel's), else nvcc on PATH, else the wheel's
(`pip install nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-crt`), for sm_90 plus
PTX (EVOZERO_CUDA_ARCH=NN for another). Opt-in, never automatic: a CPU install must
not change with what happens to be on PATH, nor fail on a broken CUDA toolchain.
`python setup.py cuda_check` compiles the CUDA sources without linking (CI's check).
"""

import os
import shlex
import shutil
import subprocess
import tempfile
from glob import glob
from importlib.util import find_spec
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import Command, setup

ParallelCompile("EVOZERO_BUILD_JOBS", default=0).install()

extra = ["-O3", "-fvisibility=hidden", "-Wall", "-Wextra"]
if os.environ.get("EVOZERO_NATIVE") == "1":
    extra.append("-march=native")
if os.environ.get("EVOZERO_SANITIZE") == "1":
    extra += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]

CUDA_SOURCES = sorted(glob("csrc/cuda/*.cu"))


def _wheel_nvcc() -> str | None:
    """The nvcc of the nvidia-cuda-nvcc wheel in this environment, if installed."""
    spec = find_spec("nvidia")
    for root in spec.submodule_search_locations if spec else []:
        found = sorted(glob(os.path.join(root, "*", "bin", "nvcc")))
        if found:
            return found[-1]
    return None


def _nvcc() -> str:
    """$NVCC (NVCC=wheel: the wheel's), else nvcc on PATH, else the wheel's; or SystemExit."""
    wanted = os.environ.get("NVCC")
    found = _wheel_nvcc() if wanted == "wheel" else wanted or shutil.which("nvcc") or _wheel_nvcc()
    if not found:
        raise SystemExit(
            "EVOZERO_CUDA=1 needs nvcc: set NVCC, put nvcc on PATH, or "
            "`pip install nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-crt`"
        )
    return found


def _nvcc_compile(source: str, obj: str) -> None:
    """source (.cu) -> obj, for sm_$EVOZERO_CUDA_ARCH (default 90) plus its PTX.

    --fmad=false: no float contraction, as the CPU build (bit-exact op kernels).
    """
    arch = os.environ.get("EVOZERO_CUDA_ARCH", "90")
    cmd = [
        _nvcc(),
        "-std=c++17",
        "-O3",
        "--fmad=false",
        f"-gencode=arch=compute_{arch},code=[sm_{arch},compute_{arch}]",
        "-Icsrc",
        "-Xcompiler=-fPIC,-fvisibility=hidden",
        "-c",
        source,
        "-o",
        obj,
    ]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _cuda_lib_dir() -> str:
    """The folder of libcudart_static.a: beside the nvcc in use, in CUDA_HOME, or the wheel's."""
    nvcc = _nvcc()
    tops = [Path(nvcc).resolve().parent.parent]
    tops += [Path(p) for p in (os.environ.get("CUDA_HOME"), "/usr/local/cuda") if p]
    wheel = _wheel_nvcc()
    tops += [Path(wheel).parent.parent] if wheel else []
    for top in tops:
        for lib in ("lib64", "lib", "targets/x86_64-linux/lib"):
            if (top / lib / "libcudart_static.a").exists():
                return str(top / lib)
    raise SystemExit(f"no libcudart_static.a for {nvcc}: `pip install nvidia-cuda-runtime`")


class BuildExt(build_ext):
    """build_ext that compiles csrc/cuda/*.cu with nvcc for evozero._cuda."""

    def build_extension(self, ext):
        if ext.name == "evozero._cuda":
            out = Path(self.build_temp) / "cuda"
            out.mkdir(parents=True, exist_ok=True)
            for source in CUDA_SOURCES:
                obj = str(out / (Path(source).stem + ".o"))
                _nvcc_compile(source, obj)
                ext.extra_objects.append(obj)
            ext.library_dirs.append(_cuda_lib_dir())
        super().build_extension(ext)


class CudaCheck(Command):
    """Compiles every CUDA source with nvcc and the extension's host code with the host
    compiler, without linking: a compile error fails."""

    description = "compile csrc/cuda/ (.cu with nvcc, .cpp with c++; no link, no GPU needed)"
    user_options = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for source in CUDA_SOURCES:
                _nvcc_compile(source, os.path.join(tmp, Path(source).stem + ".o"))
        # The extension's host code (the pybind11 layer), with the host compiler.
        import sysconfig

        import pybind11

        python = sysconfig.get_paths()["include"]
        includes = ["-Icsrc", f"-I{pybind11.get_include()}", f"-I{python}"]
        flags = ["-std=c++17", "-fsyntax-only", "-fvisibility=hidden", "-Wall", "-Wextra"]
        for source in sorted(glob("csrc/cuda/*.cpp")):
            cmd = [*shlex.split(os.environ.get("CXX", "c++")), *flags, *includes, source]
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)


ext = Pybind11Extension(
    "evozero._core",
    sorted(p for p in glob("csrc/**/*.cpp", recursive=True) if not p.startswith("csrc/cuda/")),
    # Headers too, so that a changed header (csrc/generated/ after a codegen run) rebuilds.
    depends=sorted(glob("csrc/**/*.hpp", recursive=True)),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=extra,
    extra_link_args=["-fsanitize=address,undefined"]
    if os.environ.get("EVOZERO_SANITIZE") == "1"
    else [],
)
ext_modules = [ext]
if os.environ.get("EVOZERO_CUDA") == "1":
    ext_modules.append(
        Pybind11Extension(
            "evozero._cuda",
            sorted(glob("csrc/cuda/*.cpp")),
            depends=sorted(glob("csrc/**/*.hpp", recursive=True)) + CUDA_SOURCES,
            include_dirs=["csrc"],
            cxx_std=17,
            extra_compile_args=["-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
            libraries=["cudart_static", "dl", "rt", "pthread"],
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt, "cuda_check": CudaCheck})
