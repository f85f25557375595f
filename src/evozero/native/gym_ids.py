"""The gymnasium ids of the native games, registered without loading the native core.

``import evozero`` calls :func:`register_envs`, so ``gymnasium.make("evozero/Breakout-v1")``
and ``gymnasium.make_vec(...)`` work after it (the convention of ale-py:
``gym.register_envs(evozero)`` documents the import). The entry points are strings, so the
compiled extension loads only when an env is made.
"""

from __future__ import annotations

import difflib
import re

#: The five MinAtar games, in the order of the native core (``_core.GAMES``; a test
#: checks they agree).
GAMES: tuple[str, ...] = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


def check_game(game: str) -> str:
    """``game`` if it is a native game, else ValueError listing the valid names."""
    if game not in GAMES:
        raise ValueError(
            f"unknown game {game!r}{did_you_mean_game(game)}; valid games: {', '.join(GAMES)}"
        )
    return game


def did_you_mean_game(name: str) -> str:
    """``"; did you mean 'space_invaders'?"`` for a name that looks like a native game
    (other case, a gymnasium id such as ``MinAtar/SpaceInvaders-v1``, a typo), else ``""``."""
    base = re.sub(r"-v\d+$", "", name.rsplit("/", 1)[-1])
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower().replace("-", "_")
    close = [base] if base in GAMES else difflib.get_close_matches(base, GAMES, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close and close[0] != name else ""


def gym_id(game: str, minimal_action_set: bool = True) -> str:
    """The gymnasium id of a game: ``evozero/Breakout-v1`` (minimal) or ``-v0`` (full)."""
    name = "".join(part.capitalize() for part in check_game(game).split("_"))
    return f"evozero/{name}-v{1 if minimal_action_set else 0}"


def register_envs() -> None:
    """Register ``evozero/<Game>-v0`` (6 actions) and ``-v1`` (minimal) for every game."""
    import gymnasium as gym

    for game in GAMES:
        for minimal in (False, True):
            env_id = gym_id(game, minimal)
            if env_id in gym.registry:
                continue
            gym.register(
                id=env_id,
                entry_point="evozero.native.envs:MinAtarEnv",
                vector_entry_point="evozero.native.envs:make_vec",
                kwargs={"game": game, "minimal_action_set": minimal},
            )
