"""The reference evaluator: scan/post/objective semantics and forward-mode tangents."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from evozero.program import Program, dsl, random_program
from evozero.program.evaluate import (
    POST_INPUTS,
    ObjectiveResult,
    run_objective,
    run_post,
    run_scan,
)
from evozero.program.ops import OPS

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
f32 = np.float32


def load(name: str) -> Program:
    return dsl.load(PROGRAMS / f"{name}.evz")


def rollout(T: int = 40, B: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """A rollout with episodes ending mid-rollout: terminations and truncations."""
    rng = np.random.default_rng(seed)
    u = rng.random((T, B))
    term = (u < 0.08).astype(f32)
    trunc = ((u >= 0.08) & (u < 0.14)).astype(f32)
    reset = np.maximum(term, trunc)
    return {
        "r": rng.normal(size=(T, B)).astype(f32),
        "term": term,
        "reset": reset,
        "v": rng.normal(size=(T, B)).astype(f32),
        "v_next": rng.normal(size=(T, B)).astype(f32),
        "logp": (-rng.random((T, B)) * 2).astype(f32),
        "entropy": rng.random((T, B)).astype(f32),
    }


def samples(N: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    logp = (-rng.random(N) * 2 - 0.1).astype(f32)
    v = rng.normal(size=N).astype(f32)
    return {
        "logp": logp,
        "logp_old": (logp + rng.normal(scale=0.3, size=N)).astype(f32),
        "adv": rng.normal(size=N).astype(f32),
        "v": v,
        "v_old": (v + rng.normal(scale=0.3, size=N)).astype(f32),
        "vtarget": rng.normal(size=N).astype(f32),
        "entropy": (rng.random(N) + 0.5).astype(f32),
    }


# ----------------------------------------------------------------------------- scan


def test_gae_matches_direct_loop() -> None:
    """ppo.evz's scan is GAE; the same float32 operations in the same order agree bitwise."""
    p = load("ppo")
    x = rollout()
    k = p.constant_values
    gamma, lam = f32(k["gamma"]), f32(k["lam"])
    assert x["term"].any() and (x["reset"] > x["term"]).any()  # both kinds of episode end
    out = run_scan(p, x, 0.3)
    T, B = x["r"].shape
    g = np.zeros(B, f32)
    adv = np.zeros((T, B), f32)
    vtarget = np.zeros((T, B), f32)
    one = f32(1)
    for t in range(T - 1, -1, -1):
        delta = x["r"][t] + gamma * (one - x["term"][t]) * x["v_next"][t] - x["v"][t]
        g = delta + gamma * lam * (one - x["reset"][t]) * g
        adv[t] = g
        vtarget[t] = g + x["v"][t]
    np.testing.assert_array_equal(out["adv"], adv)
    np.testing.assert_array_equal(out["vtarget"], vtarget)
    np.testing.assert_array_equal(out["g"], adv)
    assert {k: v.dtype for k, v in out.items()} == dict.fromkeys(
        ("adv", "vtarget", "g"), np.float32
    )


def test_gae_float64_reference() -> None:
    """Independent check of GAE's meaning: float64 recursion, float32 tolerance."""
    p = load("a2c")
    x = rollout(T=64, B=4, seed=3)
    out = run_scan(p, x, 0.0)
    x64 = {k: v.astype(np.float64) for k, v in x.items()}
    T, B = x["r"].shape
    adv = np.zeros((T, B))
    last = np.zeros(B)
    for t in reversed(range(T)):
        nonterminal = 1.0 - x64["term"][t]
        delta = x64["r"][t] + 0.99 * nonterminal * x64["v_next"][t] - x64["v"][t]
        last = delta + 0.99 * 0.95 * (1.0 - x64["reset"][t]) * last
        adv[t] = last
    np.testing.assert_allclose(out["adv"], adv, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["vtarget"], adv + x64["v"], rtol=1e-4, atol=1e-5)


def test_reinforce_monte_carlo_return() -> None:
    """Carry init v_next: the return bootstraps from V(s_T) at the rollout's end and from
    V of the true next state on truncation; termination cuts it."""
    p = load("reinforce")
    x = rollout(T=50, B=5, seed=1)
    out = run_scan(p, x, 0.5)
    x64 = {k: v.astype(np.float64) for k, v in x.items()}
    T, B = x["r"].shape
    ret = np.zeros((T, B))
    for b in range(B):
        for t in reversed(range(T)):
            bootstrap = t == T - 1 or x64["reset"][t, b]
            nxt = x64["v_next"][t, b] if bootstrap else ret[t + 1, b]
            ret[t, b] = x64["r"][t, b] + 0.99 * (1.0 - x64["term"][t, b]) * nxt
    np.testing.assert_allclose(out["vtarget"], ret, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["ret"], ret, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["adv"], ret - x64["v"], rtol=1e-4, atol=1e-5)


def test_td_actor_critic() -> None:
    p = load("td_ac")
    x = rollout(seed=2)
    out = run_scan(p, x, 1.0)
    vt = x["r"] + f32(0.99) * (f32(1) - x["term"]) * x["v_next"]
    np.testing.assert_array_equal(out["vtarget"], vt)
    np.testing.assert_array_equal(out["adv"], vt - x["v"])
    assert set(out) == {"adv", "vtarget"}


def test_carry_init_and_unassigned_carry() -> None:
    """A carry never reassigned keeps its initial value; v_next init reads v_next[T-1]."""
    p = dsl.parse(
        "scan:\n  carry a = v_next\n  carry b = 0\n  carry c = v_next\n"
        "  c = c + 1\n  adv = a + b\n  vtarget = c\n"
        "objective:\n  loss = logp\n"
    )
    x = rollout(T=4, B=3)
    out = run_scan(p, x, 0.0)
    last = x["v_next"][-1]
    np.testing.assert_array_equal(out["a"], np.broadcast_to(last, (4, 3)))
    np.testing.assert_array_equal(out["b"], np.zeros((4, 3), f32))
    # c counts up backwards from v_next[T-1]: c_t = v_next[T-1] + (T - t).
    np.testing.assert_array_equal(out["c"], last + np.array([4, 3, 2, 1], f32)[:, None])
    np.testing.assert_array_equal(out["vtarget"], out["c"])


def test_progress_and_scalar_outputs_broadcast() -> None:
    p = dsl.parse("scan:\n  adv = progress * 2\n  vtarget = 1\nobjective:\n  loss = 0\n")
    x = rollout(T=3, B=2)
    out = run_scan(p, x, 0.25)
    np.testing.assert_array_equal(out["adv"], np.full((3, 2), 0.5, f32))
    np.testing.assert_array_equal(out["vtarget"], np.ones((3, 2), f32))
    res = run_objective(p, samples(5), 0.1)
    for arr in (res.loss, res.dloss_dlogp, res.dloss_dv, res.dloss_dentropy):
        np.testing.assert_array_equal(arr, np.zeros(5, f32))


def test_empty_rollout() -> None:
    p = load("reinforce")
    out = run_scan(p, {k: v[:0] for k, v in rollout().items()}, 0.0)
    assert {k: v.shape for k, v in out.items()} == dict.fromkeys(("adv", "vtarget", "ret"), (0, 6))


def test_input_validation() -> None:
    p = load("ppo")
    x = rollout()
    with pytest.raises(ValueError, match="missing inputs"):
        run_scan(p, {k: v for k, v in x.items() if k != "v_next"}, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        run_scan(p, {**x, "r": x["r"][:-1]}, 0.0)
    with pytest.raises(ValueError, match="2 dimensions"):
        run_scan(p, {k: v.ravel() for k, v in x.items()}, 0.0)
    with pytest.raises(ValueError, match="missing inputs"):
        run_objective(p, {"logp": np.zeros(3)}, 0.0)


# ----------------------------------------------------------------------------- post


def test_post_normalize_and_passthrough() -> None:
    p = load("ppo")
    rng = np.random.default_rng(0)
    x = {n: rng.normal(loc=2.0, scale=3.0, size=(16, 8)).astype(f32) for n in POST_INPUTS}
    out = run_post(p, x, 0.5)
    a64 = x["adv"].astype(np.float64)
    expected = (a64 - a64.mean()) / (a64.std() + 1e-8)
    np.testing.assert_allclose(out["adv"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["adv"], OPS["normalize"].numpy(x["adv"]))
    np.testing.assert_array_equal(out["vtarget"], x["vtarget"])  # unassigned: passthrough
    assert out["vtarget"] is not x["vtarget"]


def test_post_batch_ops_reduce_over_everything() -> None:
    p = dsl.parse(
        "scan:\n  adv = r\n  vtarget = v\n"
        "post:\n  adv = adv - mean(adv) + std(v) * progress\n"
        "  vtarget = mean(2) + normalize(1)\nobjective:\n  loss = 0\n"
    )
    rng = np.random.default_rng(1)
    x = {n: rng.normal(size=(5, 7)).astype(f32) for n in POST_INPUTS}
    out = run_post(p, x, 0.5)
    mean = f32(x["adv"].astype(np.float64).mean())
    std = f32(x["v"].astype(np.float64).std())
    np.testing.assert_allclose(out["adv"], x["adv"] - mean + std * f32(0.5), rtol=1e-6)
    # A scalar argument stands for a full (constant) batch: mean 2, normalize 0.
    np.testing.assert_array_equal(out["vtarget"], np.full((5, 7), 2, f32))


# ----------------------------------------------------------------------------- objective


def ppo_direct(
    x: dict[str, np.ndarray], eps: float = 0.2, c_v: float = 0.5, c_h: float = 0.01
) -> tuple[np.ndarray, ...]:
    """PPO's loss and its derivatives written out by hand (float32 numpy)."""
    eps, c_v, c_h = f32(eps), f32(c_v), f32(c_h)
    one, half = f32(1), f32(0.5)
    logp, adv, v, v_old, vt = x["logp"], x["adv"], x["v"], x["v_old"], x["vtarget"]
    ratio = np.exp(logp - x["logp_old"])
    unclipped = ratio * adv
    inside = (ratio >= one - eps) & (ratio <= one + eps)
    clipped = np.clip(ratio, one - eps, one + eps) * adv
    surr = np.minimum(unclipped, clipped)
    d_unc, d_clip = adv, adv * inside
    dsurr_dratio = np.where(
        unclipped < clipped,
        d_unc,
        np.where(clipped < unclipped, d_clip, half * d_unc + half * d_clip),
    )
    v_in = np.abs(v - v_old) <= eps
    v_clipped = v_old + np.clip(v - v_old, -eps, eps)
    a = (v - vt) ** 2
    b = (v_clipped - vt) ** 2
    value_loss = half * np.maximum(a, b)
    da, db = 2 * (v - vt), 2 * (v_clipped - vt) * v_in
    dvl_dv = half * np.where(a > b, da, np.where(b > a, db, half * da + half * db))
    loss = -surr + c_v * value_loss - c_h * x["entropy"]
    return (loss, -dsurr_dratio * ratio, c_v * dvl_dv, np.full_like(loss, -c_h))


def test_ppo_objective_and_derivatives() -> None:
    p = load("ppo")
    x = samples(4096)
    res = run_objective(p, x, 0.0)
    assert isinstance(res, ObjectiveResult)
    ratio = np.exp(x["logp"] - x["logp_old"])
    assert ((ratio < 0.8) | (ratio > 1.2)).mean() > 0.2  # both branches exercised
    assert (np.abs(x["v"] - x["v_old"]) > 0.2).mean() > 0.2
    loss, dlogp, dv, dent = ppo_direct(x)
    for got, want in zip(
        (res.loss, res.dloss_dlogp, res.dloss_dv, res.dloss_dentropy),
        (loss, dlogp, dv, dent),
        strict=True,
    ):
        assert got.dtype == np.float32 and got.shape == (4096,)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_ppo_ties_follow_autograd_conventions() -> None:
    """Inside the clip range min() ties: 0.5 to each branch, i.e. the full adv."""
    p = load("ppo")
    x = samples(8)
    x["logp_old"] = x["logp"].copy()  # ratio == 1 exactly
    x["v_old"] = x["v"].copy()  # v_clipped == v: the max() ties too
    res = run_objective(p, x, 0.0)
    np.testing.assert_allclose(res.dloss_dlogp, -x["adv"], rtol=1e-6)
    np.testing.assert_allclose(res.dloss_dv, 0.5 * (x["v"] - x["vtarget"]), rtol=1e-5, atol=1e-7)


def test_dpo_evaluates() -> None:
    p = load("dpo")
    x = samples(1024, seed=5)
    res = run_objective(p, x, 0.5)
    for arr in (res.loss, res.dloss_dlogp, res.dloss_dv, res.dloss_dentropy):
        assert arr.shape == (1024,) and np.isfinite(arr).all()
    # The closed-form drift, written out in float64.
    x64 = {k: v.astype(np.float64) for k, v in x.items()}
    r = np.exp(x64["logp"] - x64["logp_old"])
    a = x64["adv"]
    ra, la = (r - 1) * a, np.log(r) * a
    drift = np.where(
        a > 0, np.maximum(ra - 2 * np.tanh(ra / 2), 0), np.maximum(la - 0.6 * np.tanh(la / 0.6), 0)
    )
    vc = x64["v_old"] + np.clip(x64["v"] - x64["v_old"], -0.2, 0.2)
    vl = 0.5 * np.maximum((x64["v"] - x64["vtarget"]) ** 2, (vc - x64["vtarget"]) ** 2)
    loss = -(r * a - drift) + 0.5 * vl - 0.01 * x64["entropy"]
    np.testing.assert_allclose(res.loss, loss, rtol=1e-4, atol=1e-5)
    sc = run_scan(p, rollout(), 0.5)
    post = run_post(
        p,
        {"adv": sc["adv"], "vtarget": sc["vtarget"], "v": rollout()["v"], "r": rollout()["r"]},
        0.5,
    )
    assert abs(float(post["adv"].mean())) < 1e-5


def test_structurally_zero_tangents_are_skipped() -> None:
    """div's partial w.r.t. b overflows here, but b has no tangent: no NaN."""
    p = dsl.parse(
        "scan:\n  adv = r\n  vtarget = v\nobjective:\n  loss = (1e30 * logp) / (adv * 1e-10)\n"
    )
    x = samples(16)
    x["adv"] = np.full(16, 1e-5, f32)
    res = run_objective(p, x, 0.0)
    assert np.isfinite(res.dloss_dlogp).all()
    assert (res.dloss_dv == 0).all() and (res.dloss_dentropy == 0).all()


def test_overflow_gives_inf_without_warnings() -> None:
    p = dsl.parse(
        "scan:\n  adv = exp(80) * exp(80) * r\n  vtarget = v / 0\n"
        "post:\n  adv = normalize(adv)\n"
        "objective:\n  loss = square(1e30 * logp) + exp(1000 * v)\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc = run_scan(p, rollout(), 0.0)
        run_post(
            p,
            {"adv": sc["adv"], "vtarget": sc["vtarget"], "v": rollout()["v"], "r": rollout()["r"]},
            0.0,
        )
        res = run_objective(p, samples(), 0.0)
    assert np.isinf(sc["adv"]).any()
    assert np.isinf(res.loss).all()


@pytest.mark.parametrize("seed", range(25))
def test_random_programs_run(seed: int) -> None:
    p = random_program(np.random.default_rng(seed), max_instrs=12)
    x = rollout(T=7, B=3, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc = run_scan(p, x, 0.3)
        po = run_post(
            p, {"adv": sc["adv"], "vtarget": sc["vtarget"], "v": x["v"], "r": x["r"]}, 0.3
        )
        res = run_objective(p, samples(9, seed), 0.3)
    assert set(sc) == {"adv", "vtarget", *p.scan.carry_names}
    assert all(a.shape == (7, 3) and a.dtype == np.float32 for a in sc.values())
    assert all(a.shape == (7, 3) and a.dtype == np.float32 for a in po.values())
    assert all(
        getattr(res, f).shape == (9,) for f in ("loss", "dloss_dlogp", "dloss_dv", "dloss_dentropy")
    )


# ----------------------------------------------------------------------------- tangents vs FD

torch = pytest.importorskip("torch")


def objective64(p: Program, x: dict[str, np.ndarray], progress: float) -> np.ndarray:
    """The objective re-evaluated in float64 through the op table's torch forms."""
    d = torch.float64

    def t(a: object) -> object:
        return torch.as_tensor(a, dtype=d)

    env = {c.name: t(c.value) for c in p.constants}
    env.update({k: t(v) for k, v in x.items()})
    env["progress"] = t(progress)
    env["ratio"] = torch.exp(env["logp"] - env["logp_old"])
    for ins in p.objective.instrs:
        env[ins.target] = OPS[ins.op].torch(
            *[env[a] if isinstance(a, str) else t(a) for a in ins.args]
        )
    return np.broadcast_to(env["loss"].numpy(), x["logp"].shape)


@pytest.mark.parametrize("block", range(4))
def test_tangents_match_finite_differences(block: int) -> None:
    """Random programs: tangents vs central differences of a float64 re-evaluation, at
    points away from kinks (two step sizes agree) and where float32 and float64 agree."""
    compared = 0
    for seed in range(block * 40, block * 40 + 40):
        p = random_program(np.random.default_rng(10_000 + seed), max_instrs=10, p_literal=0.1)
        x = samples(64, seed)
        res = run_objective(p, x, 0.4)
        base = objective64(p, x, 0.4)
        with np.errstate(all="ignore"):
            ok = (
                np.isfinite(base)
                & np.isfinite(res.loss)
                & (np.abs(res.loss - base) <= 1e-4 * (1 + np.abs(base)))
            )
        for name, tan in (
            ("logp", res.dloss_dlogp),
            ("v", res.dloss_dv),
            ("entropy", res.dloss_dentropy),
        ):
            x64 = x[name].astype(np.float64)
            fds = []
            for rel in (1e-5, 1e-6):
                h = rel * (1 + np.abs(x64))
                plus = objective64(p, {**x, name: x64 + h}, 0.4)
                minus = objective64(p, {**x, name: x64 - h}, 0.4)
                with np.errstate(all="ignore"):
                    fds.append((plus - minus) / (2 * h))
            with np.errstate(all="ignore"):
                smooth = (
                    ok
                    & np.isfinite(fds[0])
                    & np.isfinite(fds[1])
                    & np.isfinite(tan)
                    & (np.abs(fds[0] - fds[1]) <= 1e-4 * (1 + np.abs(fds[1])))
                )
            if not smooth.any():
                continue
            fd, got = fds[1][smooth], tan[smooth].astype(np.float64)
            scale = 1 + np.abs(base[smooth])
            err = np.abs(got - fd)
            bad = err > 2e-3 * (np.abs(fd) + 1e-3 * scale)
            assert not bad.any(), (
                f"seed {seed}, d/d{name}: tangent {got[bad][:3]} vs fd {fd[bad][:3]}\n{p}"
            )
            compared += int(np.count_nonzero(fd))
    assert compared > 200
