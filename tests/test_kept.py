"""What buttons may still ask is kept bounded: the newest a user, and so many in all."""

from __future__ import annotations

from services.kept import Kept, Offers


def test_a_user_keeps_their_newest_and_the_oldest_user_goes_first() -> None:
    kept: Kept[str, int] = Kept(per_user=2, most=3)
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        kept.put(1, key, value)
    assert [kept.get(1, key) for key in "abc"] == [None, 2, 3]  # the user's oldest let go
    kept.put(2, "x", 10)
    kept.put(3, "y", 20)  # four in all: the user whose newest is oldest goes, whole
    assert [kept.get(1, "b"), kept.get(1, "c"), kept.get(2, "x"), kept.get(3, "y")] == [
        None,
        None,
        10,
        20,
    ]
    assert len(kept) == 2


def test_put_again_replaces_and_pop_and_drop_let_go() -> None:
    kept: Kept[int | None, str] = Kept(per_user=3, most=10)
    kept.put(1, None, "first")
    kept.put(1, None, "second")  # one topic keeps one value
    kept.put(1, 7, "topic")
    kept.put(2, None, "other user")
    assert len(kept) == 3
    assert kept.pop(1, None) == "second"
    assert kept.pop(1, None) is None
    kept.drop(1)
    assert (kept.get(1, 7), kept.get(2, None), len(kept)) == (None, "other user", 1)


def test_discard_lets_go_of_the_values_it_picks_and_only_the_users() -> None:
    kept: Kept[str, tuple[int | None, str]] = Kept(per_user=4, most=10)
    kept.put(1, "a", (None, "in the chat"))
    kept.put(1, "b", (7, "in a topic"))
    kept.put(2, "c", (None, "another user's"))
    kept.discard(1, lambda value: value[0] is None)
    assert [kept.get(1, "a"), kept.get(1, "b"), kept.get(2, "c"), len(kept)] == [
        None,
        (7, "in a topic"),
        (None, "another user's"),
        2,
    ]
    kept.discard(1, lambda _value: True)
    kept.discard(3, lambda _value: True)  # a user with nothing kept: nothing to do
    assert (kept.get(1, "b"), len(kept)) == (None, 1)
    kept.put(1, "d", (None, "new"))  # the user starts afresh
    assert len(kept) == 2


def test_an_offer_is_its_users_to_press_and_is_taken_once() -> None:
    offers: Offers[str] = Offers(per_user=8, most=100)
    offers.offer(1, "a")
    offers.offer(1, "b")
    assert [offers.press(2, "a"), offers.press(1, "a"), offers.press(1, "z")] == [
        False,  # another user's press is not the asker's
        True,
        False,  # never offered
    ]
    assert [offers.offered("a"), offers.offered("b"), offers.offered("z")] == [True, True, False]
    assert [offers.take(2, "a"), offers.take(1, "a"), offers.take(1, "a")] == [False, True, False]
    assert [offers.offered("a"), offers.take(1, "b"), len(offers)] == [False, False, 0]


def test_a_users_ninth_offer_lets_their_first_go_and_all_are_bounded() -> None:
    offers: Offers[str] = Offers(per_user=8, most=10)
    for n in range(9):
        offers.offer(1, f"u1-{n}")
    assert [offers.offered(f"u1-{n}") for n in range(9)] == [False] + [True] * 8
    assert not offers.press(1, "u1-0")
    offers.offer(2, "u2-0")
    offers.offer(2, "u2-1")
    offers.offer(3, "u3-0")  # eleven offered, ten kept in all: the oldest goes
    assert [offers.offered("u1-1"), offers.offered("u1-2"), len(offers)] == [False, True, 10]
    offers.withdraw("u2-0")
    offers.withdraw("never")
    assert [offers.offered("u2-0"), offers.offered("u2-1"), len(offers)] == [False, True, 9]
