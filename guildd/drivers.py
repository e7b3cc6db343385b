"""What drives a running run: its shim (a local process), a pipeline's loop, or a batch's
loop (guildd.batches.Batch). The daemon keeps one registry of them by run id; stopping a
run asks its driver.
"""

import asyncio
from typing import Callable, Optional, Protocol


class Driver(Protocol):
    """Drives one running run. A run executed elsewhere (a remote job) or one the scheduler
    stops to requeue fits here too: it says how to stop the run and resolves `ended`."""

    run_id: str
    stopping: bool  # a stop was asked for
    ended: "asyncio.Future[None]"  # done once the driver is done with the run

    def stop(self) -> bool:
        """Asks the run to stop; False when there is nothing to stop."""
        ...


class Drivers:
    """The registry: run id -> its driver."""

    def __init__(self) -> None:
        self._drivers: dict[str, Driver] = {}

    def add(self, driver: Driver) -> None:
        self._drivers[driver.run_id] = driver

    def get(self, run_id: str) -> Optional[Driver]:
        return self._drivers.get(run_id)

    def pop(self, run_id: str) -> Optional[Driver]:
        """Takes a run's driver out of the registry and resolves its `ended`."""
        driver = self._drivers.pop(run_id, None)
        if driver is not None and not driver.ended.done():
            driver.ended.set_result(None)
        return driver

    def remove(self, driver: Driver) -> None:
        """pop() of this driver, if it is still the one registered for its run."""
        if self._drivers.get(driver.run_id) is driver:
            self.pop(driver.run_id)
        elif not driver.ended.done():
            driver.ended.set_result(None)

    def stop(self, run_id: str) -> bool:
        """Asks a run's driver to stop it; False when it has none or nothing to stop."""
        driver = self._drivers.get(run_id)
        return driver is not None and driver.stop()

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._drivers



class ShimDriver:
    """A run whose process a local shim runs (guildd.shim), watched by the Executor."""

    def __init__(self, run_id: str, signal: Callable[[str], bool]) -> None:
        self.run_id = run_id
        self.stopping = False
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._signal = signal  # Executor.signal: asks the shim to stop its process

    def stop(self) -> bool:
        if not self._signal(self.run_id):
            return False
        self.stopping = True
        return True


class PipelineDriver:
    """A pipeline's loop (guildd.pipeline): it runs one step at a time."""

    def __init__(self, run_id: str, drivers: Drivers) -> None:
        self.run_id = run_id
        self.stopping = False
        self.step: Optional[str] = None  # the running step's run id
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drivers = drivers

    def stop(self) -> bool:
        """No further steps, and the current one stopped."""
        self.stopping = True
        if self.step is not None:
            self._drivers.stop(self.step)
        return True
