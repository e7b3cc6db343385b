"""Stand-ins the unit tests of guildd's parts share."""


class InPlaceRuntime:
    """guildd.runtime.Runtime's io/work, run on the caller's thread (a test's store is used
    from one thread)."""

    async def io(self, fn, *args, **kw):
        return fn(*args, **kw)

    async def work(self, fn, *args, **kw):
        return fn(*args, **kw)
