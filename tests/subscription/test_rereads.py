"""One re-read answers the burst of events that arrived before it began (`ReReads`)."""

from __future__ import annotations

from workflows.subscription_state import ReReads


def test_a_reread_answers_events_that_arrived_before_it_began() -> None:
    rereads = ReReads()
    first, second = rereads.arrive(), rereads.arrive()
    rereads.begin("sub_1")
    third = rereads.arrive()  # during the re-read: it may have seen an older object
    rereads.commit()
    assert rereads.answered("sub_1", first)
    assert rereads.answered("sub_1", second)
    assert not rereads.answered("sub_1", third)
    assert not rereads.answered("sub_2", first)


def test_a_failed_handler_answers_nothing() -> None:
    rereads = ReReads()
    event = rereads.arrive()
    rereads.begin("in_1")
    rereads.discard()
    assert not rereads.answered("in_1", event)
    # A later successful re-read of another object does not resurrect it.
    rereads.begin("sub_1")
    rereads.commit()
    assert not rereads.answered("in_1", event)
    assert rereads.answered("sub_1", event)


def test_the_latest_recorded_reread_counts() -> None:
    rereads = ReReads()
    early = rereads.arrive()
    rereads.begin("sub_1")
    rereads.commit()
    late = rereads.arrive()
    assert not rereads.answered("sub_1", late)
    rereads.begin("sub_1")
    rereads.commit()
    assert rereads.answered("sub_1", late) and rereads.answered("sub_1", early)
