"""The consumer loop's direct delivery (streaming/delivery.py), without a broker."""

import asyncio
import inspect
import sys
import textwrap

import pytest

from streaming.delivery import DirectDeliveryConsumer, deliver


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_delivery_that_need_not_wait_finishes_without_the_loop_running():
    seen = []

    async def callback():
        seen.append(asyncio.current_task())

    async def main():
        loop_ran = []
        asyncio.get_running_loop().call_soon(loop_ran.append, True)
        interrupt = asyncio.get_running_loop().create_future()
        assert await deliver(callback(), interrupt)
        return asyncio.current_task(), list(loop_ran)  # as it stood when the delivery returned

    caller, loop_ran = run(main())
    assert seen and not loop_ran  # it ran to its end, and nothing was scheduled for it
    if sys.version_info < (3, 12):
        assert seen == [caller]  # in the caller's task: no task of its own
    else:
        assert seen[0] is not caller  # an eager task of its own (see the timeout test)


def test_a_delivery_that_waits_finishes_when_what_it_waits_on_does():
    async def main():
        loop = asyncio.get_running_loop()
        interrupt, room = loop.create_future(), loop.create_future()
        steps = []

        async def callback():
            steps.append("put")
            steps.append(await room)  # a full buffer, until the stream takes a message
            await asyncio.sleep(0)  # a bare yield on the way
            steps.append("done")
            return "ignored"

        loop.call_later(0.01, room.set_result, "room")
        assert await deliver(callback(), interrupt)
        return steps

    assert run(main()) == ["put", "room", "done"]


def waiting_forever(cleaned: list):
    """A delivery that waits until it is closed, and notes that its clean-up ran."""

    async def callback():
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            cleaned.append(True)

    return callback()


def test_an_interrupt_closes_a_waiting_delivery_where_it_waits():
    async def main():
        interrupt, cleaned = asyncio.get_running_loop().create_future(), []
        asyncio.get_running_loop().call_later(0.01, interrupt.set_result, None)
        delivered = await asyncio.wait_for(deliver(waiting_forever(cleaned), interrupt), 5)  # fails, not hangs
        return delivered, cleaned

    assert run(main()) == (False, [True])


def test_an_error_in_the_delivery_reaches_the_loop():
    async def main():
        loop = asyncio.get_running_loop()
        interrupt, ready = loop.create_future(), loop.create_future()

        async def callback():
            await ready
            raise ValueError("bad message")

        loop.call_later(0.01, ready.set_result, None)
        await deliver(callback(), interrupt)

    with pytest.raises(ValueError, match="bad message"):
        run(main())


def test_cancelling_the_loop_closes_the_delivery():
    async def main():
        interrupt, cleaned = asyncio.get_running_loop().create_future(), []
        task = asyncio.ensure_future(deliver(waiting_forever(cleaned), interrupt))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return cleaned

    assert run(main()) == [True]


def test_fausts_drain_loop_is_the_one_this_was_copied_from():
    """The override copies Faust's `_drain_messages` and changes one call and how often it yields:
    a Faust upgrade that changes the loop must be looked at (and this copy brought up to date)."""
    from faust.transport.consumer import Consumer

    def body(method) -> list[str]:
        lines = textwrap.dedent(inspect.getsource(method)).splitlines()[1:]  # not the signature
        return [code for line in lines if (code := line.split("#")[0].strip())]  # nor comments

    theirs, ours = body(Consumer._drain_messages), body(DirectDeliveryConsumer._drain_messages)
    opt_in = ours.index('if not getattr(self.app, "direct_delivery", False):')
    assert ours[opt_in + 1] == "return await super()._drain_messages(fetcher)"  # the default: Faust's loop
    del ours[opt_in : opt_in + 2]
    call = theirs.index("await self.wait_first(")
    assert theirs[call : call + 3] == ["await self.wait_first(", "callback(message), self.suspend_flow.wait()", ")"]
    theirs[call : call + 3] = ["await deliver(callback(message), self.interrupt())"]
    theirs[theirs.index("yield_every = 100")] = "yield_every = 0"  # a yield before each message
    assert ours == theirs


def test_a_timeout_inside_a_delivery_stays_inside_it():
    """Faust's producer waits with asyncio.wait_for while its buffer is full. From Python 3.12 an
    expiring timeout cancels the current task: there a delivery needs a task of its own, or the
    expiry would cancel the consumer loop."""

    async def callback():
        try:
            await asyncio.wait_for(asyncio.get_running_loop().create_future(), 0.01)
        except asyncio.TimeoutError:
            return

    async def main():
        return await deliver(callback(), asyncio.get_running_loop().create_future())

    assert run(main())
