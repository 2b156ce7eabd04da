"""Faust's consumer loop without four tasks per message.

Faust's drain loop hands every fetched message to the streams in a race with the flow being
suspended (a rebalance), the consumer stopping or crashing: `wait_first` starts four tasks per
message, waits for the first to finish and cancels the rest. On a one-line-per-message input that
was a fifth of a worker's event loop. A delivery mostly finishes without waiting (the stream's
buffer has room), so here it runs directly, as far as it goes; only a delivery that must wait
joins the same race, against one shared future that stands for the three events.

The loop still yields to the event loop before each message, as Faust's did inside every race.

The model-rollout test lost lines with it in about a third of the runs (2 of 2 in CI): records
handed to the streams after a new member's seek back to its committed offsets, which Faust then
emptied out of the stream buffers (consumer_position.Consumer.perform_seek now stops the flow for
the seek). Faust's own loop has the same gap (the seek and the emptying are Faust's), though it
never showed in 13 runs of the test.

From Python 3.12, asyncio.wait_for and asyncio.timeout cancel the current task when they expire,
and Faust's producer waits with wait_for while its buffer is full. A delivery run in the consumer
loop's task would then cancel the consumer loop, so there each delivery gets a task of its own,
started eagerly (Python 3.12's `eager_start`): it runs at once, as far as it goes, and a delivery
that need not wait is never scheduled (about 0.4 us more than running it in place).

`_drain_messages` is Faust 0.15.3's with those two changes (tests/test_delivery.py checks that
Faust's loop is still the one this was copied from)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Coroutine
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service, ServiceT

_FINISHED = object()


def _step(coroutine: Coroutine) -> Any:
    """Runs the coroutine to its next wait: what it waits on (a future; None: a bare yield), or _FINISHED."""
    try:
        return coroutine.send(None)
    except StopIteration:
        return _FINISHED


async def deliver_in_place(coroutine: Coroutine, interrupt: asyncio.Future) -> bool:
    """Runs `coroutine` to its end in the caller's task, or closes it where it waits once `interrupt`
    is done (as Faust cancels the delivery's task). True when it ran to its end."""
    waiting_on = _step(coroutine)
    try:
        while waiting_on is not _FINISHED:
            if waiting_on is None:  # asyncio.sleep(0): let the loop run once
                await asyncio.sleep(0)
            else:
                waiting_on._asyncio_future_blocking = False  # taken over, as a task does
                await asyncio.wait((waiting_on, interrupt), return_when=asyncio.FIRST_COMPLETED)
                if not waiting_on.done():
                    coroutine.close()
                    return False
            waiting_on = _step(coroutine)
    except BaseException:  # cancelled while waiting: the delivery goes too
        coroutine.close()
        raise
    return True


async def deliver_in_eager_task(coroutine: Coroutine, interrupt: asyncio.Future) -> bool:
    """As `deliver_in_place`, in a task of its own (Python 3.12+): a timeout that expires inside the
    delivery cancels the delivery's task, not the caller's. The task is cancelled, not awaited,
    once `interrupt` is done first (as Faust's race does)."""
    task = asyncio.Task(coroutine, loop=asyncio.get_running_loop(), eager_start=True)  # type: ignore[call-arg]
    if not task.done():
        try:
            await asyncio.wait((task, interrupt), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while waiting: the delivery goes too
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            return False
    task.result()  # what the delivery raised reaches the loop
    return True


deliver = deliver_in_place if sys.version_info < (3, 12) else deliver_in_eager_task


class DirectDeliveryConsumer(faust_aiokafka.Consumer):
    _interrupt: asyncio.Future | None = None

    def interrupt(self) -> asyncio.Future:
        """Done once the flow is suspended or the consumer stops or crashes; renewed after it fired."""
        if self._interrupt is None or self._interrupt.done():
            service = cast(Service, self)
            waits = [asyncio.ensure_future(event.wait()) for event in (self.suspend_flow, service._stopped,
                                                                       service._crashed)]  # fmt: skip
            interrupt = asyncio.get_running_loop().create_future()

            def fired(_: asyncio.Future) -> None:
                if not interrupt.done():
                    interrupt.set_result(None)
                for wait in waits:
                    wait.cancel()

            for wait in waits:
                wait.add_done_callback(fired)
            self._interrupt = interrupt
        return self._interrupt

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        if not getattr(self.app, "direct_delivery", False):
            return await super()._drain_messages(fetcher)  # Faust's own loop
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 0  # Faust: 100. Its deliveries yielded to the loop each; these yield here instead
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = cast(AsyncIterator, getmany(timeout=1.0))

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            # Faust: await self.wait_first(callback(message), self.suspend_flow.wait())
                            await deliver(callback(message), self.interrupt())
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)
