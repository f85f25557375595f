"""The native MinAtar games as gymnasium environments (public home of
:mod:`evozero.native.envs`; importing it registers the ``evozero/<Game>-v0|v1`` ids)."""

from evozero.native.envs import (
    GAMES,
    DeviceStep,
    MinAtarEnv,
    MinAtarVecEnv,
    active_cells,
    gym_id,
    register_envs,
)

__all__ = [
    "GAMES",
    "DeviceStep",
    "MinAtarEnv",
    "MinAtarVecEnv",
    "active_cells",
    "gym_id",
    "register_envs",
]
