"""Request dependencies for what the app holds in its state (clock, settings, Redis).

They are `async def` although they do not await: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop per dependency per request on the payment path.
"""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from shared.clock import Clock
from shared.config import Settings


async def get_clock(request: Request) -> Clock:
    return request.app.state.clock


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
