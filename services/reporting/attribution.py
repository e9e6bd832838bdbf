"""Revenue attribution as pure functions: a won deal's journey, each model's touch weights, exact credits.

A journey is the deal's lead's touches at or before the close (and within the lookback window), of the
counted touch types, in time order. Every model turns a journey into one weight per touch; `allocate`
turns weights into money so that a deal's credits add up to its amount to the last cent.
"""

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

MODELS = ("first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay", "markov")
# Not marketing touches: an identify call or an unsubscribe earns no revenue credit by default.
NOT_COUNTED_BY_DEFAULT = frozenset({"identify", "unsubscribe"})
UNATTRIBUTED = "(unattributed)"
WEIGHT_SCALE = 2**64  # float weights keep every bit: shares exact to far below one quantum
NO_CAMPAIGN = "(none)"


class Touch(NamedTuple):  # a NamedTuple: a million of them are built per report, at a third of a dataclass's cost
    at: datetime
    type: str  # the short name: email_open, web_visit, form_fill ...
    campaign: str  # the registry's campaign id, else NO_CAMPAIGN
    channel: str
    machine_generated: bool = False


@dataclass(frozen=True, slots=True)
class WonDeal:
    deal_id: str
    amount: Decimal
    currency: str
    closed_at: datetime
    lead_created_at: datetime | None = None
    opportunity_at: datetime | None = None  # when the deal was created: the W-shaped model's third key touch


@dataclass(frozen=True)
class Parameters:
    lookback: timedelta = timedelta(days=365)
    touch_types: frozenset[str] | None = None  # None: every type but NOT_COUNTED_BY_DEFAULT
    half_life: timedelta = timedelta(days=7)
    include_machine_generated: bool = False

    def counts(self, touch: Touch) -> bool:
        if touch.machine_generated and not self.include_machine_generated:
            return False
        return self.counts_type(touch.type)

    def counts_type(self, touch_type: str) -> bool:
        if self.touch_types is None:
            return touch_type not in NOT_COUNTED_BY_DEFAULT
        return touch_type in self.touch_types


def journey(touches: Sequence[Touch], until: datetime, parameters: Parameters) -> tuple[Touch, ...]:
    """The counted touches in (until - lookback, until], in time order (`touches` are); later ones never count."""
    since = until - parameters.lookback
    types = parameters.touch_types
    machine = parameters.include_machine_generated
    return tuple(
        t
        for t in touches
        if since < t.at <= until
        and (machine or not t.machine_generated)
        and (t.type in types if types is not None else t.type not in NOT_COUNTED_BY_DEFAULT)
    )


def first_touch(n: int) -> list[float]:
    return [1.0] + [0.0] * (n - 1)


def last_touch(n: int) -> list[float]:
    return [0.0] * (n - 1) + [1.0]


def linear(n: int) -> list[float]:
    return [1.0 / n] * n


def u_shaped(n: int) -> list[float]:
    """40 % to the first touch, 40 % to the last, 20 % spread over those between."""
    if n <= 2:
        return linear(n)
    return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]


def key_index(path: Sequence[Touch], at: datetime | None, default: int) -> int:
    """The last touch at or before `at` (the touch that caused the milestone); `default` when unknown."""
    if at is None:
        return default
    before = [i for i, t in enumerate(path) if t.at <= at]
    return before[-1] if before else 0


def w_shaped(path: Sequence[Touch], lead_created_at: datetime | None, opportunity_at: datetime | None) -> list[float]:
    """30 % each to the first touch, the lead-creation touch and the opportunity-creation touch; 10 % to the rest.

    Key touches that coincide add up; with no other touch the 10 % goes to the key touches like the 90 %.
    """
    n = len(path)
    keys = [0, key_index(path, lead_created_at, 0), key_index(path, opportunity_at, n - 1)]
    weights = [0.0] * n
    for k in keys:
        weights[k] += 0.3
    rest = [i for i in range(n) if i not in keys]
    if not rest:
        return [w / 0.9 for w in weights]
    for i in rest:
        weights[i] = 0.1 / len(rest)
    return weights


def time_decay(path: Sequence[Touch], closed_at: datetime, half_life: timedelta) -> list[float]:
    """A touch's weight halves with every half-life between it and the close (weights relative to the newest)."""
    newest = min(closed_at - t.at for t in path)  # measured from it, no weight underflows to zero
    return [0.5 ** ((closed_at - t.at - newest) / half_life) for t in path]


def by_removal_effect(path: Sequence[Touch], effects: Mapping[str, float], key: Callable[[Touch], str]) -> list[float]:
    """The Markov model's split of one deal: each state on the path by its removal effect, shared by its touches."""
    states = [key(t) for t in path]
    seen = Counter(states)
    weights = [max(effects.get(s, 0.0), 0.0) / seen[s] for s in states]
    return weights if sum(weights) > 0 else linear(len(path))


def quantum(amount: Decimal) -> Decimal:
    """The smallest unit credits are counted in: cents, or the amount's own finer precision."""
    exponent = amount.as_tuple().exponent
    return Decimal(1).scaleb(min(exponent if isinstance(exponent, int) else 0, -2))


def allocate(amount: Decimal, weights: Sequence[float]) -> list[Decimal]:
    """Split `amount` in proportion to `weights`, in whole quanta, summing to `amount` exactly."""
    unit = quantum(amount)
    return [unit * s for s in allocate_units(int((amount / unit).to_integral_value()), weights)]


def allocate_units(units: int, weights: Sequence[float]) -> list[int]:
    """Largest remainder, in integers: weights become integers (2**64 for the largest, a relative error
    below 1e-19), every share is rounded down, and the units left over go to the largest remainders
    (earlier ones first on ties). The shares add up to `units` exactly."""
    largest = max(weights, default=0.0)
    scaled = [round(w / largest * WEIGHT_SCALE) for w in weights] if largest > 0 else [1] * len(weights)
    total = sum(scaled)
    shares = [units * w // total for w in scaled]
    left = units - sum(shares)
    if left:
        remainders = [units * w % total for w in scaled]
        for i in sorted(range(len(shares)), key=lambda i: (-remainders[i], i))[:left]:
            shares[i] += 1
    return shares


class DealCredit(NamedTuple):
    """One model's credit of one deal to one campaign and channel (its touches' weights added up)."""

    deal_id: str
    model: str
    campaign: str
    channel: str
    share: float  # of the deal: a fractional deal count
    revenue: Decimal


@dataclass(frozen=True)
class MarkovEffects:
    by_campaign: Mapping[str, float] = field(default_factory=dict)
    by_channel: Mapping[str, float] = field(default_factory=dict)


def model_weights(
    model: str, path: Sequence[Touch], deal: WonDeal, parameters: Parameters, markov: MarkovEffects, by: str
) -> list[float]:
    n = len(path)
    if model == "first_touch":
        return first_touch(n)
    if model == "last_touch":
        return last_touch(n)
    if model == "linear":
        return linear(n)
    if model == "u_shaped":
        return u_shaped(n)
    if model == "w_shaped":
        return w_shaped(path, deal.lead_created_at, deal.opportunity_at)
    if model == "time_decay":
        return time_decay(path, deal.closed_at, parameters.half_life)
    if model == "markov":
        if by == "channel":
            return by_removal_effect(path, markov.by_channel, lambda t: t.channel)
        return by_removal_effect(path, markov.by_campaign, lambda t: t.campaign)
    raise ValueError(f"unknown attribution model {model!r}")


def attribute_deal(
    deal: WonDeal, path: Sequence[Touch], parameters: Parameters, markov: MarkovEffects, by: str = "campaign"
) -> list[DealCredit]:
    """Every model's credits of one deal per campaign and channel; a deal with an empty journey is unattributed.

    The touches' weights are added up per campaign and channel first, then allocated: linear still
    counts every touch (two touches of a campaign earn it twice the weight of one).
    """
    if not path:
        return [DealCredit(deal.deal_id, m, UNATTRIBUTED, UNATTRIBUTED, 1.0, deal.amount) for m in MODELS]
    credits: list[DealCredit] = []
    keys = [(t.campaign, t.channel) for t in path]
    unit = quantum(deal.amount)
    units = int((deal.amount / unit).to_integral_value())
    for model in MODELS:
        weights: dict[tuple[str, str], float] = {}
        for key, weight in zip(keys, model_weights(model, path, deal, parameters, markov, by), strict=True):
            if weight:
                weights[key] = weights.get(key, 0.0) + weight
        total = sum(weights.values())
        shares = allocate_units(units, list(weights.values()))
        for (campaign, channel), weight, share in zip(weights, weights.values(), shares, strict=True):
            credits.append(DealCredit(deal.deal_id, model, campaign, channel, weight / total, unit * share))
    return credits
