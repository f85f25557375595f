"""False merges of the behavioural fingerprint on pairs of near-identical rules.

When sympy gives up on a program, the search decides duplicates by its fingerprint
(``evozero.program.canon``): its outputs on a fixed probe batch. Two different rules with
the same fingerprint are a false merge: the second is never trained. This script draws
pairs of near-identical rules and counts false merges before (fingerprint version 1, the
probe batch of commit 0d058b1, reproduced in ``fingerprint_v1`` below) and after (the
current probe batch) issue 10's fix.

Pairs (parent, child), each child one step from its parent:

* ``random``: a random program and one random mutation of it;
* ``search``: a reference program after 0-5 random mutations, and one more (what the
  search breeds from ``--init seeds``);
* ``threshold``: a rule that steps where one input crosses a threshold, and the same rule
  with the threshold scaled by ``exp(N(0, 0.2))`` (the ``perturb_constant`` mutation),
  for every input over the range it reaches in training.

Ground truth: a pair is *different* when sympy says so (both canonical keys are sympy keys,
computed with a generous ``--timeout``, and they differ) *and* the two rules' outputs
differ beyond float32 rounding (relative 1e-4, absolute 1e-6) on a large validation batch
drawn independently of the probe batch (continuous random draws over the training ranges
and far beyond them; see ``validation_batch``). Pairs that sympy tells apart but whose
outputs agree on the validation batch differ only below float32 resolution or in a region
no input reaches; they are counted separately. A pair is the *same* rule when sympy gives
both the same key.

Figures: among different pairs, the share with equal fingerprints (the false-merge rate
when sympy gives up), version 1 vs now; the driver's false-merge rate (its duplicate rule
with the keys it computes at the default time bound), before (a key or a fingerprint
match) vs after (``canon.same_keys``); among same-rule pairs, the share whose fingerprints
agree (what the fallback still merges). ``--ranges`` also measures the env side of the
ranges the probe batch covers (native games, uniform-random policy). Results go to
``benchmarks/results/fingerprint_merges.json``; the README quotes them.

    python benchmarks/fingerprint_merges.py                 # ~15 minutes on one core
    python benchmarks/fingerprint_merges.py --pairs 100 --no-ranges
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evozero.program import dsl, random_program
from evozero.program.canon import (
    DEFAULT_TIMEOUT,
    ProbeBatch,
    behaviour,
    canonical_key,
    fingerprint,
    same_keys,
)
from evozero.program.dsl import format_literal
from evozero.program.evaluate import run_objective, run_post, run_scan
from evozero.program.liveness import program_liveness
from evozero.program.model import Program
from evozero.program.mutate import mutate
from evozero.program.vocabulary import OUTPUTS

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = {
    p.stem: dsl.load(p) for p in sorted((ROOT / "programs").glob("*.evz")) if p.stem != "noop"
}

# ----------------------------------------------------------------------------- version 1
# The fingerprint of commit 0d058b1 (CANON_VERSION 1), verbatim in what it computes.

_V1_EDGE = np.array(
    [0.0, 1.0, -1.0, 0.5, -2.0, 1e-7, -1e-7, 1e-3, 1e3, -1e3, 1e6, -3e4], dtype=np.float32
)


def _v1_mixed(
    rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0, p_edge: float = 0.25
) -> np.ndarray:
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    mask = rng.random(shape) < p_edge
    x[mask] = rng.choice(_V1_EDGE, size=int(mask.sum()))
    k = min(x.size, _V1_EDGE.size)
    x.flat[rng.permutation(x.size)[:k]] = rng.permutation(_V1_EDGE)[:k]
    return x


def _v1_probes() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(20240611)
    T, B, N = 12, 6, 96
    term = (rng.random((T, B)) < 0.15).astype(np.float32)
    reset = np.maximum(term, (rng.random((T, B)) < 0.1).astype(np.float32))
    term[:, 0] = reset[:, 0] = 0.0
    term[T - 1, 1] = reset[T - 1, 1] = 1.0
    reset[3, 2], term[3, 2] = 1.0, 0.0
    scan = {
        "r": _v1_mixed(rng, (T, B)),
        "term": term,
        "reset": reset,
        "v": _v1_mixed(rng, (T, B), 2.0),
        "v_next": _v1_mixed(rng, (T, B), 2.0),
        "logp": -np.abs(_v1_mixed(rng, (T, B), 1.5)),
        "entropy": np.abs(_v1_mixed(rng, (T, B))),
    }
    post = {n: _v1_mixed(rng, (T, B), 2.0) for n in ("adv", "vtarget", "v", "r")}
    logp = -np.abs(_v1_mixed(rng, (N,), 1.5))
    shift = (rng.standard_normal(N) * 0.3).astype(np.float32)
    shift[rng.random(N) < 0.15] = np.float32(0.0)
    objective = {
        "logp": logp,
        "logp_old": (logp + shift).astype(np.float32),
        "adv": _v1_mixed(rng, (N,), 1.5),
        "v": _v1_mixed(rng, (N,), 2.0),
        "v_old": _v1_mixed(rng, (N,), 2.0),
        "vtarget": _v1_mixed(rng, (N,), 2.0),
        "entropy": np.abs(_v1_mixed(rng, (N,))),
    }
    return {"scan": scan, "post": post, "objective": objective}


V1_PROBES = _v1_probes()


def _v1_quantize(a: np.ndarray) -> str:
    tokens = []
    for x in np.asarray(a, dtype=np.float64).ravel().tolist():
        if math.isnan(x):
            tokens.append("nan")
        elif math.isinf(x):
            tokens.append("inf" if x > 0 else "-inf")
        elif x == 0.0:
            tokens.append("0")
        else:
            tokens.append(f"{x:.4e}")
    return ",".join(tokens)


def fingerprint_v1(program: Program) -> str:
    """The version-1 fingerprint (probe progress 0 and 0.625, 5 significant digits)."""
    lv = program_liveness(program)
    scan_live = [o for o in OUTPUTS["scan"] if o in lv.live_in["post"]]
    h = hashlib.sha256(b"evozero-fingerprint/1\n")
    for p in (0.0, 0.625):
        out: dict[str, np.ndarray] = {}
        if scan_live:
            res = run_scan(program, V1_PROBES["scan"], p)
            out.update({f"scan.{o}@{p}": res[o] for o in scan_live})
        if lv.outputs["post"]:
            res = run_post(program, V1_PROBES["post"], p)
            out.update({f"post.{o}@{p}": res[o] for o in lv.outputs["post"]})
        obj = run_objective(program, V1_PROBES["objective"], p)
        for name in ("loss", "dloss_dlogp", "dloss_dv", "dloss_dentropy"):
            out[f"objective.{name}@{p}"] = getattr(obj, name)
        for name, values in out.items():
            h.update(f"{name}={_v1_quantize(values)}\n".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- ground truth


def _loguniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _sign(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    return x * rng.choice([-1.0, 1.0], x.size)


def validation_batch(seed: int = 7) -> ProbeBatch:
    """A large batch independent of the probe batch: per element, half a draw from the
    input's training range, half a log-uniform draw far beyond it (continuous, so no value
    coincides with the probe batch's grids)."""
    rng = np.random.default_rng(seed)
    realistic: dict[str, Callable[[int], np.ndarray]] = {
        "reward": lambda n: rng.choice([0.0] * 6 + [1.0] * 2 + [-1.0, 2.0, 3.0, 5.0, 10.0], n),
        "value": lambda n: rng.uniform(-10.0, 300.0, n),
        "adv": lambda n: rng.standard_t(3, n) * 2.0,
        "logp": lambda n: -rng.uniform(0.0, math.log(6), n),
        "entropy": lambda n: rng.uniform(0.0, math.log(6), n),
        "ratio": lambda n: np.exp(rng.normal(0.0, 0.3, n)),
        "diff": lambda n: _sign(rng, _loguniform(rng, 1e-5, 10.0, n)),
    }
    wide: dict[str, Callable[[int], np.ndarray]] = {
        "logp": lambda n: -_loguniform(rng, 1e-5, 1e4, n),
        "entropy": lambda n: _loguniform(rng, 1e-7, 1e3, n),
        "ratio": lambda n: _loguniform(rng, 1e-5, 1e4, n),
    }

    def draw(kind: str, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)
        far = wide.get(kind, lambda m: _sign(rng, _loguniform(rng, 1e-5, 1e5, m)))(n)
        x = np.where(rng.random(n) < 0.5, realistic[kind](n), far)
        return x.astype(np.float32).reshape(shape)

    def rollout(shape: tuple[int, ...], **kinds: str) -> dict[str, np.ndarray]:
        return {name: draw(kind, shape) for name, kind in kinds.items()}

    T, B, N = 32, 4096, 65536
    term = (rng.random((T, B)) < 0.15).astype(np.float32)
    reset = np.maximum(term, (rng.random((T, B)) < 0.1).astype(np.float32))
    scan = {
        **rollout((T, B), r="reward", v="value", v_next="value", logp="logp", entropy="entropy"),
        "term": term,
        "reset": reset,
    }
    normalized = rollout((64, 1024), vtarget="value", v="value", r="reward")
    normalized["adv"] = rng.standard_t(2, (64, 1024)).astype(np.float32)  # long tails
    post = {
        "wide": rollout((64, 1024), adv="value", vtarget="value", v="value", r="reward"),
        "normalized": normalized,
        "sweep": rollout((8, 64), adv="value", vtarget="value", v="value", r="reward"),
    }
    objective = rollout(
        (N,), logp="logp", adv="adv", v="value", v_old="value", vtarget="value", entropy="entropy"
    )
    objective["logp_old"] = (objective["logp"] - np.log(draw("ratio", (N,)))).astype(np.float32)
    for name in ("v_old", "vtarget"):
        close = objective["v"] + draw("diff", (N,))
        objective[name] = np.where(rng.random(N) < 0.5, close, objective[name]).astype(np.float32)
    sweep = tuple(float(x) for x in np.sort(rng.uniform(0.0, 1.0, 200)))
    return ProbeBatch(
        scan=scan,
        scan_progress=rng.uniform(0, 1, B).astype(np.float32),
        post=post,
        post_progress=float(rng.uniform()),
        post_sweep=(0.0, *sweep, 1.0),
        objective=objective,
        objective_progress=rng.uniform(0, 1, N).astype(np.float32),
    )


def outputs_differ(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two behaviours differ beyond float32 rounding."""
    if a.keys() != b.keys():
        return True
    return not all(
        a[k].shape == b[k].shape and np.allclose(a[k], b[k], rtol=1e-4, atol=1e-6, equal_nan=True)
        for k in a
    )


# ----------------------------------------------------------------------------- pairs

#: component, input, threshold range over training values (lo, hi), sign.
THRESHOLD_INPUTS: tuple[tuple[str, str, float, float, float], ...] = (
    ("objective", "adv", 0.01, 100.0, 0.0),
    ("objective", "ratio", 0.1, 10.0, 1.0),
    ("objective", "logp", 1e-3, 100.0, -1.0),
    ("objective", "v", 0.01, 300.0, 0.0),
    ("objective", "v_old", 0.01, 300.0, 0.0),
    ("objective", "vtarget", 0.01, 300.0, 0.0),
    ("objective", "entropy", 1e-3, math.log(6), 1.0),
    ("objective", "progress", 0.01, 0.99, 1.0),
    ("scan", "r", 0.5, 10.0, 0.0),
    ("scan", "v", 0.01, 300.0, 0.0),
    ("scan", "v_next", 0.01, 300.0, 0.0),
    ("scan", "logp", 1e-3, 100.0, -1.0),
    ("scan", "entropy", 1e-3, math.log(6), 1.0),
    ("scan", "progress", 0.01, 0.99, 1.0),
    ("post", "adv", 0.01, 300.0, 0.0),
    ("post", "vtarget", 0.01, 300.0, 0.0),
    ("post", "v", 0.01, 300.0, 0.0),
    ("post", "r", 0.5, 10.0, 0.0),
    ("post", "progress", 0.01, 0.99, 1.0),
)


def stepped(component: str, x: str, c: float, above: bool) -> Program:
    """A rule that keeps a term of A2C-like code only where ``x`` is above ``c`` (or only
    where it is not)."""
    on, off = ("1", "0") if above else ("0", "1")
    gate = f"gate = where({x} - k, {on}, {off})"
    lines = {
        "scan": "adv = r - v\nvtarget = r",
        "post": "",
        "objective": "loss = -logp * adv + 0.5 * square(v - vtarget)",
    }
    if component == "objective":
        lines["objective"] = f"{gate}\nloss = -logp * adv * gate + 0.5 * square(v - vtarget)"
    elif component == "post":
        lines["post"] = f"{gate}\nadv = adv * gate"
    else:
        lines["scan"] = f"{gate}\nadv = (r - v) * gate\nvtarget = r"
    text = f"const k = {format_literal(c)}\n"
    for kind in ("scan", "post", "objective"):
        body = "".join(f"  {line}\n" for line in lines[kind].splitlines())
        text += f"\n{kind}:\n{body}"
    return dsl.parse(text)


def make_pair(group: str, rng: np.random.Generator) -> tuple[Program, Program, str]:
    """(parent, child, what changed) of a pair of ``group``."""
    if group == "random":
        p = random_program(rng, max_instrs=12, max_carries=3)
        q, m = mutate(p, rng)
        return p, q, m.kind
    if group == "search":
        p = list(REFERENCES.values())[int(rng.integers(len(REFERENCES)))]
        for _ in range(int(rng.integers(0, 6))):
            p, _m = mutate(p, rng)
        q, m = mutate(p, rng)
        return p, q, m.kind
    comp, x, lo, hi, sign = THRESHOLD_INPUTS[int(rng.integers(len(THRESHOLD_INPUTS)))]
    if x == "progress":
        c = float(rng.uniform(lo, hi))
    elif x == "ratio":
        c = float(_loguniform(rng, lo, hi, 1)[0])
    else:
        c = float(_loguniform(rng, lo, hi, 1)[0]) * (sign or float(rng.choice([-1.0, 1.0])))
    c2 = c * math.exp(rng.normal(0.0, 0.2))
    above = bool(rng.random() < 0.5)
    return (
        stepped(comp, x, float(np.float32(c)), above),
        stepped(comp, x, float(np.float32(c2)), above),
        f"{comp}.{x}",
    )


# ----------------------------------------------------------------------------- measuring


class _Keys:
    def __init__(self, key: str, fingerprint: str) -> None:
        self.key, self.fingerprint = key, fingerprint


def measure_pair(p: Program, q: Program, val: ProbeBatch, timeout: float) -> dict[str, Any]:
    """Ground truth and both fingerprint versions' verdicts for one pair."""
    kp, kq = canonical_key(p, timeout), canonical_key(q, timeout)
    if kp == kq:
        sympy = "same"
    elif kp.startswith("s:") and kq.startswith("s:"):
        sympy = "different"
    else:
        sympy = "unknown"
    differ = outputs_differ(behaviour(p, val), behaviour(q, val))
    f1 = fingerprint_v1(p) == fingerprint_v1(q)
    f2 = fingerprint(p) == fingerprint(q)
    # The driver's keys: sympy at its default bound, else the fingerprint of that version.
    dp, dq = canonical_key(p, DEFAULT_TIMEOUT), canonical_key(q, DEFAULT_TIMEOUT)
    old_dp = dp if dp.startswith("s:") else "f:" + fingerprint_v1(p)
    old_dq = dq if dq.startswith("s:") else "f:" + fingerprint_v1(q)
    return {
        "sympy": sympy,
        "outputs_differ": differ,
        "fp_v1_equal": f1,
        "fp_v2_equal": f2,
        "driver_fallback": not (dp.startswith("s:") and dq.startswith("s:")),
        "driver_before": old_dp == old_dq or f1,
        "driver_after": same_keys(_Keys(dp, fingerprint(p)), _Keys(dq, fingerprint(q))),
    }


def before_after(rows: list[dict[str, Any]], before: str, after: str) -> dict[str, Any]:
    """How many of ``rows`` have ``before`` / ``after`` true, and the rates."""
    n = len(rows)
    return {
        when: {
            "count": (hits := sum(r[field] for r in rows)),
            "of": n,
            "rate": hits / n if n else None,
        }
        for when, field in (("before", before), ("after", after))
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    different = [r for r in rows if r["sympy"] == "different" and r["outputs_differ"]]
    below = [r for r in rows if r["sympy"] == "different" and not r["outputs_differ"]]
    same = [r for r in rows if r["sympy"] == "same"]
    return {
        "pairs": len(rows),
        "different": len(different),
        "sympy_different_outputs_equal": len(below),
        "same": len(same),
        "sympy_unknown": sum(r["sympy"] == "unknown" for r in rows),
        "fingerprint_false_merges": before_after(different, "fp_v1_equal", "fp_v2_equal"),
        "driver_false_merges": before_after(different, "driver_before", "driver_after"),
        # pairs where the driver's sympy key of either program fell back to the fingerprint
        "driver_fallback_pairs": sum(r["driver_fallback"] for r in different),
        "same_rule_fingerprints_agree": before_after(same, "fp_v1_equal", "fp_v2_equal"),
        "sympy_different_outputs_equal_fingerprints_agree": before_after(
            below, "fp_v1_equal", "fp_v2_equal"
        ),
    }


def measure_ranges(updates: int) -> dict[str, Any]:
    """Env-side ranges on the native games: per-step rewards, and the largest normalized
    advantage (GAE 0.99/0.95 with V = 0, normalized over the 128 x 64 rollout as ppo.evz's
    post does) of a uniform-random policy."""
    from evozero.native.envs import GAMES, make_vec

    T, B = 128, 64
    out = {}
    for game in GAMES:
        env = make_vec(game, num_envs=B)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        rewards: Counter[float] = Counter()
        max_z, max_gae = [], 0.0
        for _ in range(updates):
            r = np.zeros((T, B), np.float32)
            done = np.zeros((T, B), np.float32)
            for t in range(T):
                _obs, r[t], term, trunc, _info = env.step(
                    rng.integers(0, env.single_action_space.n, B)
                )
                done[t] = term | trunc
            rewards.update(r.ravel().tolist())
            g, adv = np.zeros(B, np.float32), np.zeros((T, B), np.float32)
            for t in range(T - 1, -1, -1):
                g = r[t] + 0.99 * 0.95 * (1.0 - done[t]) * g
                adv[t] = g
            max_gae = max(max_gae, float(adv.max()))
            if adv.std() > 0:
                max_z.append(float(np.abs((adv - adv.mean()) / (adv.std() + 1e-8)).max()))
        env.close()
        out[game] = {
            "rewards": {str(k): v for k, v in sorted(rewards.items())},
            "max_gae": max_gae,
            "max_abs_normalized_adv_median": float(np.median(max_z)) if max_z else None,
            "max_abs_normalized_adv_max": max(max_z, default=None),
        }
    return {
        "policy": "uniform random",
        "rollout": [T, B],
        "updates_per_game": updates,
        "games": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1000, help="pairs per group")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--timeout", type=float, default=10.0, help="sympy time bound of the ground truth (seconds)"
    )
    ap.add_argument("--no-ranges", dest="ranges", action="store_false")
    ap.add_argument("--ranges-updates", type=int, default=40)
    ap.add_argument(
        "--results", type=Path, default=ROOT / "benchmarks" / "results" / "fingerprint_merges.json"
    )
    args = ap.parse_args()
    t0 = time.time()
    val = validation_batch()
    rows_by_group: dict[str, list[dict[str, Any]]] = {}
    examples: list[dict[str, str]] = []
    for gi, group in enumerate(("random", "search", "threshold")):
        rng = np.random.default_rng([args.seed, gi])
        rows = []
        for i in range(args.pairs):
            p, q, what = make_pair(group, rng)
            row = {"what": what, **measure_pair(p, q, val, args.timeout)}
            rows.append(row)
            if (
                row["fp_v2_equal"]
                and row["sympy"] == "different"
                and row["outputs_differ"]
                and len(examples) < 5
            ):
                examples.append({"group": group, "a": dsl.to_text(p), "b": dsl.to_text(q)})
            if (i + 1) % 100 == 0:
                print(f"{group}: {i + 1} pairs, {time.time() - t0:.0f} s", flush=True)
        rows_by_group[group] = rows
    everything = [r for rows in rows_by_group.values() for r in rows]
    result: dict[str, Any] = {
        "ground_truth": (
            f"different: sympy keys (timeout {args.timeout:g} s) differ and "
            "outputs differ (rtol 1e-4, atol 1e-6) on an independent validation "
            "batch; same: equal sympy keys"
        ),
        "all": summarize(everything),
        "groups": {g: summarize(rows) for g, rows in rows_by_group.items()},
        "threshold_inputs": {
            w: summarize([r for r in rows_by_group["threshold"] if r["what"] == w])
            for w in sorted({r["what"] for r in rows_by_group["threshold"]})
        },
        "merged_after_examples": examples,
        "seconds": time.time() - t0,
    }
    if args.ranges:
        result["ranges"] = measure_ranges(args.ranges_updates)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    s = result["all"]
    print(
        json.dumps(
            {
                k: s[k]
                for k in (
                    "pairs",
                    "different",
                    "fingerprint_false_merges",
                    "driver_false_merges",
                    "same_rule_fingerprints_agree",
                )
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
