"""Request dependencies for what the app holds in its state (clock, settings, Redis)."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from shared.clock import Clock
from shared.config import Settings


def get_clock(request: Request) -> Clock:
    return request.app.state.clock


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
