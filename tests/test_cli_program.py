"""``evozero show`` and ``evozero export`` through typer's CliRunner."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from cli_checks import LONG_PROGRAMS, TERMINALS, as_terminal, plain, strict_json
from typer.testing import CliRunner

from evozero.cli import app
from evozero.export import pseudocode
from evozero.program import dsl
from evozero.program.evaluate import OBJECTIVE_INPUTS, run_objective

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
PPO = str(PROGRAMS / "ppo.evz")
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_line_error(result, exit_code: int = 2) -> str:
    """The error message: exit code 2, a single line, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# ----------------------------------------------------------------------------- show


def test_show_pseudocode_drops_dead_code(tmp_path: Path) -> None:
    src = tmp_path / "dead.evz"
    src.write_text(
        "const k = 2, unused = 5\nscan:\n  carry c = 0\n  c = c + 1\n"
        "  junk = exp(r)\n  adv = r * k\n  vtarget = v\n"
        "objective:\n  loss = -logp * adv\n"
    )
    result = invoke("show", str(src))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "adv = r * k" in out and "loss = -logp * adv" in out
    assert "junk" not in out and "carry" not in out and "unused" not in out
    # What show prints parses back to the live program.
    assert dsl.parse(out).objective == dsl.load(src).live().objective


def test_show_reference_program() -> None:
    result = invoke("show", PPO)
    assert result.exit_code == 0, result.output
    text = (PROGRAMS / "ppo.evz").read_text()
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    shown = [ln.rstrip() for ln in result.stdout.splitlines() if ln.strip()]
    assert shown == body


@pytest.mark.parametrize(("width", "tty"), TERMINALS)
@pytest.mark.parametrize("name", sorted(LONG_PROGRAMS))
def test_show_prints_the_live_program_at_any_width(
    name: str, width: int, tty: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / f"{name}.evz"
    src.write_text(LONG_PROGRAMS[name])
    as_terminal(monkeypatch, width, tty)
    result = invoke("show", str(src))
    assert result.exit_code == 0, result.output
    assert dsl.parse(plain(result.stdout)) == dsl.load(src).live()
    if not tty:  # `evozero show a.evz > b.evz` writes the live program's text
        assert result.stdout == pseudocode(dsl.load(src))


@pytest.mark.parametrize("flags", [[], ["--latex"]])
def test_show_json_on_a_file(flags: list[str]) -> None:
    result = invoke("show", PPO, "--json", *flags)
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["program"] == PPO and data["format"] == ("latex" if flags else "evz")
    if not flags:
        assert dsl.parse(data["text"]) == dsl.load(PPO).live()


def test_show_latex() -> None:
    result = invoke("show", PPO, "--latex")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.count(r"\begin{aligned}") == 3 and out.count(r"\end{aligned}") == 3
    assert r"g &\leftarrow \delta + \gamma \cdot lam \cdot \left(1 - reset\right) \cdot g" in out
    assert r"\operatorname{normalize}\left(adv\right)" in out
    assert r"\gamma = 0.99" in out


def test_show_simplify() -> None:
    result = invoke("show", str(PROGRAMS / "td_ac.evz"), "--simplify", "--timeout", "30")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "scan:" in out and "objective:" in out
    assert "vtarget = " in out and "timed out" not in out
    assert "loss = " in out and "c_h*entropy" in out


def test_show_simplify_latex_with_carry() -> None:
    result = invoke(
        "show", str(PROGRAMS / "reinforce.evz"), "--simplify", "--latex", "--timeout", "30"
    )
    assert result.exit_code == 0, result.output
    assert r"ret_{t+1}" in result.stdout
    assert r"\begin{cases}" in result.stdout


def test_show_simplify_timeout_falls_back() -> None:
    result = invoke("show", PPO, "--simplify", "--timeout", "0")
    assert result.exit_code == 0, result.output
    assert "# not simplified (timed out)" in result.stdout
    assert "normalize(adv)" in result.stdout


# ----------------------------------------------------------------------------- export


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_export_backends(backend: str, tmp_path: Path) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    out = tmp_path / "rule.py"
    result = invoke("export", PPO, "-o", str(out), "--backend", backend)
    assert result.exit_code == 0, result.output
    assert f"wrote {out} ({backend})" in result.stdout
    text = out.read_text()
    assert text.startswith('"""ppo: an RL update rule exported by evozero')
    assert f"Source: {PPO}" in text
    spec = importlib.util.spec_from_file_location("rule_cli", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    o = {n: rng.normal(size=16).astype(np.float32) for n in OBJECTIVE_INPUTS}
    args = [o[n] for n in OBJECTIVE_INPUTS]
    if backend == "torch":
        import torch

        args = [torch.tensor(a) for a in args]
    loss = np.asarray(mod.objective(*args, 0.5))
    want = run_objective(dsl.load(PPO), o, 0.5).loss
    np.testing.assert_allclose(loss, want, rtol=1e-6, atol=1e-7)


def test_export_default_backend_is_numpy(tmp_path: Path) -> None:
    out = tmp_path / "rule.py"
    assert invoke("export", PPO, "--output", str(out)).exit_code == 0
    assert "import numpy as np" in out.read_text()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("command", ["show", "export"])
def test_missing_file(command: str, tmp_path: Path) -> None:
    extra = ["-o", str(tmp_path / "rule.py")] if command == "export" else []
    line = one_line_error(invoke(command, str(tmp_path / "nope.evz"), *extra))
    assert line.startswith(f"error: PROGRAM: {tmp_path / 'nope.evz'} does not exist; give ")


@pytest.mark.parametrize("command", ["show", "export"])
def test_parse_error_is_one_line_with_location(command: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.evz"
    bad.write_text(
        "const gamma = 0.99\n\nscan:\n  adv = r * gamm\n  vtarget = v\nobjective:\n  loss = adv\n"
    )
    extra = ["-o", str(tmp_path / "rule.py")] if command == "export" else []
    line = one_line_error(invoke(command, str(bad), *extra))
    assert line.startswith(f"error: {bad}:4:13: unknown name 'gamm' in scan")
    assert "did you mean 'gamma'" in line
    assert not (tmp_path / "rule.py").exists()


def test_error_with_brackets_and_long_path(tmp_path: Path) -> None:
    """Messages are printed verbatim (no rich markup) and never wrapped."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    bad = deep / "bad.evz"
    bad.write_text("scan:\n  adv = [r]\n  vtarget = v\nobjective:\n  loss = 0\n")
    line = one_line_error(invoke("show", str(bad)))
    assert line.startswith(f"error: {bad}:2:")
    assert "lists not supported" in line


def test_directory_and_binary_file(tmp_path: Path) -> None:
    # A directory is taken for a run directory.
    assert "is not an evozero run" in one_line_error(invoke("show", str(tmp_path)))
    binary = tmp_path / "x.evz"
    binary.write_bytes(b"\xff\xfe\x00scan")
    assert f"cannot read {binary}" in one_line_error(invoke("show", str(binary)))


def test_unknown_backend(tmp_path: Path) -> None:
    line = one_line_error(invoke("export", PPO, "-o", str(tmp_path / "r.py"), "--backend", "jax"))
    assert line == "error: unknown backend 'jax'; choose one of: numpy, torch"


def test_output_in_missing_directory(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "rule.py"
    line = one_line_error(invoke("export", PPO, "-o", str(out)))
    assert line.startswith(f"error: --output: directory {tmp_path / 'missing'} does not exist")


def test_output_is_a_directory(tmp_path: Path) -> None:
    line = one_line_error(invoke("export", PPO, "-o", str(tmp_path)))
    assert line.startswith(f"error: --output: {tmp_path} is a directory")


def test_export_requires_output() -> None:
    result = invoke("export", PPO)
    assert result.exit_code == 2
    assert "Missing option" in result.output


def test_show_simplify_prints_computed_numbers(tmp_path: Path) -> None:
    """sqrt(2 * r) is sqrt(2) * sqrt(|r|): shown as float32 sqrt(2), in text and LaTeX."""
    src = tmp_path / "sqrt2.evz"
    src.write_text("scan:\n  adv = sqrt(2 * r)\n  vtarget = v\nobjective:\n  loss = -logp * adv\n")
    for flags, shown in (
        (["--simplify"], "adv = 1.4142135*sqrt(Abs(r))"),
        (["--simplify", "--latex"], r"adv &= 1.4142135 \cdot \sqrt{"),
    ):
        result = invoke("show", str(src), *flags)
        assert result.exit_code == 0, result.output
        assert shown in result.stdout
