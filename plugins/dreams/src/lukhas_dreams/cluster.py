"""The parallel engine's executor on a Dask `distributed` cluster (`DREAMS_DASK_SCHEDULER`).

Branches run as Dask tasks on the cluster's workers, which import
`lukhas_dreams` (install it there) and run the same `branch_process.dream_branch`
as local worker processes, with their own corpus cache: same seed and
input, same dream. `distributed` is the optional extra
`lukhas-dreams[distributed]`; without it, asking for a scheduler is a clear
"cannot start" (the engine falls back to sequential), never a crash.

A lost scheduler cancels the client's futures. Here that is a broken
executor (`BrokenExecutor`), not a cancelled job: the engine then falls back
to sequential and makes a new client next time, which reconnects once the
scheduler answers again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, InvalidStateError
from typing import Any

__all__ = ["DaskExecutor", "dask_executor"]

CLOSE_TIMEOUT_S = 5.0


def dask_executor(address: str, timeout_s: float) -> DaskExecutor:
    """A client of the scheduler at `address`, connected within `timeout_s`.

    Blocks while it connects: call it off the event loop (the engine does).
    Raises with a one-line reason naming the scheduler when it cannot.
    """
    try:
        from distributed import Client
    except ImportError:
        raise RuntimeError(
            f"DREAMS_DASK_SCHEDULER={address} needs the `distributed` package: "
            "pip install 'lukhas-dreams[distributed]'") from None
    connect: Callable[..., Any] = Client  # `distributed` has no type hints
    try:
        client = connect(address, timeout=timeout_s, set_as_default=False)
    except Exception as exc:
        raise OSError(f"Dask scheduler {address} unreachable: {exc}") from exc
    return DaskExecutor(client, address)


class DaskExecutor(Executor):
    """`client.get_executor()` with what the engine expects of a process pool:
    a lost scheduler breaks it, and shutting it down closes the client."""

    def __init__(self, client: Any, address: str) -> None:
        self.client = client
        self.address = address
        # Every call is its own task: two branches never share a key, nor two pings.
        self._inner = client.get_executor(pure=False)

    def _broken(self, what: str) -> BrokenExecutor:
        return BrokenExecutor(f"lost the Dask scheduler {self.address}: {what}")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.client.status != "running":
            raise self._broken(f"client {self.client.status}")
        try:
            inner = self._inner.submit(fn, *args, **kwargs)
        except RuntimeError:
            raise  # this executor was shut down
        except Exception as exc:  # e.g. ClosedClientError
            raise self._broken(f"{type(exc).__name__}: {exc}") from exc
        outer: Future[Any] = Future()

        def relay(done: Future[Any]) -> None:
            try:
                if done.cancelled():  # not by the engine (that cancels `outer`): the cluster
                    outer.set_exception(self._broken("task cancelled by the cluster"))
                elif (exc := done.exception()) is not None:
                    outer.set_exception(exc)
                else:
                    outer.set_result(done.result())
            except InvalidStateError:  # the engine cancelled it meanwhile
                pass

        outer.add_done_callback(lambda future: future.cancelled() and inner.cancel())
        inner.add_done_callback(relay)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel or wait for the tasks, then close the client (on a thread
        when not waiting: the engine drops a broken executor from the event loop)."""
        self._inner.shutdown(wait=wait and not cancel_futures)
        if wait:
            self.client.close(timeout=CLOSE_TIMEOUT_S)
        else:
            threading.Thread(target=self.client.close, kwargs={"timeout": CLOSE_TIMEOUT_S},
                             name="dreams-dask-close", daemon=True).start()
