"""One way to run blocking work (boto3, pypdf) off the event loop.

A method decorated with `off_loop` is written once, as the blocking code it is, and called
as a coroutine: `await store.get(...)` runs the body in a worker thread (asyncio's default
executor), so the loop never waits on S3 or DynamoDB. Code that is already in a thread (one
blocking operation built from others) calls the body itself: `Store.get.blocking(store, ...)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


class off_loop(Generic[S, P, R]):
    """A blocking method, awaited from the event loop and run in a thread."""

    def __init__(self, blocking: Callable[Concatenate[S, P], R]) -> None:
        self.blocking = blocking
        self.__doc__ = blocking.__doc__
        self.__name__ = blocking.__name__
        self.__wrapped__ = blocking

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> off_loop[S, P, R]: ...

    @overload
    def __get__(self, obj: S, owner: type[Any]) -> Callable[P, Awaitable[R]]: ...

    def __get__(
        self, obj: S | None, owner: type[Any]
    ) -> off_loop[S, P, R] | Callable[P, Awaitable[R]]:
        if obj is None:
            return self
        blocking = self.blocking

        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            return await asyncio.to_thread(blocking, obj, *args, **kwargs)

        return run
