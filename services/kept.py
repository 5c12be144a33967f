"""What a user's buttons may still ask, kept in memory: bounded per user and in all.

A Retry button names the failed question it asks again, a Continue button the cut answer it
goes on with; both are kept here (``ChatService``), under a key the button carries or the topic
it is in. Only in memory: a restart forgets them, and the buttons then say they expired. Each
user keeps their newest ``per_user``; all users together at most ``most``, the users whose
newest entry is oldest let go first, so no one can grow it without end.

``Firsts`` remembers what was seen once already (a place answered, a button's message pressed,
an edit told of), the newest ``size``, so that each is acted on once.

``Offers`` remembers the stop buttons shown before their answers began (an inline article's, a
guest answer's), each with whether its asker pressed it meanwhile: a user's newest
``per_user``, ``most`` in all, the oldest let go first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

K = TypeVar("K")
V = TypeVar("V")


class Firsts(Generic[K]):
    """Keys seen, the newest ``size`` remembered (in memory): each is first once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: OrderedDict[K, None] = OrderedDict()

    def first(self, key: K) -> bool:
        """True the first time ``key`` is asked about (it is remembered then), else False."""
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

    def forget(self, key: K) -> None:
        """Let go of ``key``: it is first again."""
        self._seen.pop(key, None)


class Kept(Generic[K, V]):
    """Values under keys, per user, newest kept: ``per_user`` a user, ``most`` in all."""

    def __init__(self, *, per_user: int, most: int) -> None:
        self._per_user = per_user
        self._most = most
        self._users: OrderedDict[int, OrderedDict[K, V]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        """How many values are kept, all users together."""
        return self._count

    def put(self, user_id: int, key: K, value: V) -> None:
        """Keep ``value`` under ``key`` (replacing what was there), the user's newest."""
        own = self._users.setdefault(user_id, OrderedDict())
        self._count += key not in own
        own[key] = value
        own.move_to_end(key)
        self._users.move_to_end(user_id)
        while len(own) > self._per_user:
            own.popitem(last=False)
            self._count -= 1
        while self._count > self._most:
            _user, oldest = self._users.popitem(last=False)
            self._count -= len(oldest)

    def get(self, user_id: int, key: K) -> V | None:
        """The value kept under ``key`` for the user, if any (it stays kept)."""
        own = self._users.get(user_id)
        return None if own is None else own.get(key)

    def pop(self, user_id: int, key: K) -> V | None:
        """Let go of the value kept under ``key`` for the user; it, if there was one."""
        own = self._users.get(user_id)
        if own is None or key not in own:
            return None
        value = own.pop(key)
        self._count -= 1
        if not own:
            del self._users[user_id]
        return value

    def discard(self, user_id: int, stale: Callable[[V], bool]) -> None:
        """Let go of the user's values that ``stale`` says are (the others stay as they were)."""
        own = self._users.get(user_id)
        if own is None:
            return
        for key in [key for key, value in own.items() if stale(value)]:
            del own[key]
            self._count -= 1
        if not own:
            del self._users[user_id]

    def drop(self, user_id: int) -> None:
        """Let go of everything kept for the user (their data is being erased)."""
        self._count -= len(self._users.pop(user_id, ()))


@dataclass(slots=True)
class _Offer:
    user_id: int
    pressed: bool = False


class Offers(Generic[K]):
    """Stop buttons offered to users before their answers began: whose, and whether pressed.

    In memory only, bounded: a user's newest ``per_user`` and ``most`` in all, the oldest
    offer let go first (its press then finds nothing, as for an answer that has ended).
    """

    def __init__(self, *, per_user: int, most: int) -> None:
        self._per_user = per_user
        self._most = most
        self._offers: OrderedDict[K, _Offer] = OrderedDict()  # oldest first
        self._users: dict[int, OrderedDict[K, None]] = {}  # each user's, oldest first

    def __len__(self) -> int:
        """How many offers are remembered, all users together."""
        return len(self._offers)

    def offer(self, user_id: int, key: K) -> None:
        """Remember ``key`` as offered to the user (not pressed), their newest."""
        self.withdraw(key)
        self._offers[key] = _Offer(user_id)
        own = self._users.setdefault(user_id, OrderedDict())
        own[key] = None
        while len(own) > self._per_user:
            self.withdraw(next(iter(own)))
        while len(self._offers) > self._most:
            self.withdraw(next(iter(self._offers)))

    def withdraw(self, key: K) -> None:
        """Forget the offer of ``key``, if there is one (its button was never shown)."""
        offer = self._offers.pop(key, None)
        if offer is None:
            return
        own = self._users[offer.user_id]
        del own[key]
        if not own:
            del self._users[offer.user_id]

    def offered(self, key: K) -> bool:
        """Whether ``key`` is remembered as offered (to anyone)."""
        return key in self._offers

    def press(self, user_id: int, key: K) -> bool:
        """The user pressed ``key``: True (now marked pressed) if it was offered to them."""
        offer = self._offers.get(key)
        if offer is None or offer.user_id != user_id:
            return False
        offer.pressed = True
        return True

    def take(self, user_id: int, key: K) -> bool:
        """The answer under ``key`` begins for the user: forget its offer; whether it was pressed.

        Another user's offer stays as it is (False).
        """
        offer = self._offers.get(key)
        if offer is None or offer.user_id != user_id:
            return False
        self.withdraw(key)
        return offer.pressed
