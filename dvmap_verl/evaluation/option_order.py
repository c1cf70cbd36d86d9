"""Option-order controls (``dvmap eval --option-order given|reversed|shuffled:K``): answer-order bias, measured.

Survey-style answers of language models depend on the order the options are listed in (primacy and recency
effects; Dominguez-Olmedo et al. 2024, "Questioning the Survey Responses of Large Language Models"; Pezeshkpour &
Hruschka 2024, "Large Language Models Sensitivity to The Order of Options in Multiple-Choice Questions"). An item
is re-rendered with its options permuted, the model answers the displayed list, and every answer is mapped back to
the canonical (stored, ordinal) order, so ``pred`` and ``probs`` in ``predictions.jsonl`` are always canonical.

Orders and the run protocol. ``given`` (the default) and ``reversed`` show one order per item; ``shuffled:K`` shows
K seeded permutations per item. Orders live on the **sample axis**, so that the (item, sample) key of a record stays
unique and a resume redoes exactly what is missing: with ``--samples S``, sample ``s`` of an item is its
``s % S``-th sample under order ``s // S``, and the run asks ``S * K`` samples per item (:func:`total_samples`).
Each record carries ``order`` (0-based) and ``permutation``: ``permutation[j]`` is the canonical index of the option
displayed at position ``j``. Permutations are drawn with ``numpy.random.default_rng([seed, item])`` (item: the
run's item number), so they are fixed by the run's seed and items, which a resume already guards; they are drawn
independently, so an item with few options may show the same order twice (K = 3 over 3 options: 3! = 6 orders).

Re-rendering a prompt (:func:`permuted_messages`): an imported benchmark item (``prompt_format`` and
``render_args``, written by ``dvmap import-benchmark``) is rendered again with its benchmark's own template
(``data.benchmarks.render_item``); an item whose user message is a DVMap template filled with its attributes is
rendered again with that template; otherwise the options list ``", "``-joined, when it occurs once in
the user message, is replaced; otherwise each option's text, when each occurs exactly once and in canonical order
(a lettered list, say), is replaced slot by slot. An item none of these fits is refused, naming it.

Readouts (:func:`order_report`): position bias (the share of answers at each displayed position beside the share
of items whose target sits there), cross-order consistency (the share of items whose canonical modal answer is the
same under every order) and the order-averaged distribution (each order's distribution per item, averaged with
equal weight), scored like any readout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from dvmap_verl.errors import InputError

ORDER_KINDS = ("given", "reversed", "shuffled")
#: At most this many orders per item (each order multiplies the run's requests).
MAX_ORDERS = 100
_SPEC = re.compile(r"^(given|reversed|shuffled:(\d+))$")


@dataclass(frozen=True)
class OptionOrder:
    """A parsed ``--option-order``: ``kind`` (one of :data:`ORDER_KINDS`) and ``count`` (orders per item)."""

    kind: str
    count: int = 1

    def __str__(self) -> str:
        return f"shuffled:{self.count}" if self.kind == "shuffled" else self.kind


def parse_order(spec: str | None) -> OptionOrder:
    """``given``, ``reversed`` or ``shuffled:K`` (1 <= K <= :data:`MAX_ORDERS`); None is ``given``.
    Raises :class:`InputError` naming the value otherwise."""
    if spec is None:
        return OptionOrder("given")
    m = _SPEC.match(str(spec).strip())
    if not m:
        raise InputError(f"--option-order {spec!r}: expected given, reversed or shuffled:K (K orders per item)")
    if m.group(2) is None:
        return OptionOrder(m.group(1))
    k = int(m.group(2))
    if not 1 <= k <= MAX_ORDERS:
        raise InputError(f"--option-order {spec!r}: K must lie in [1, {MAX_ORDERS}]")
    return OptionOrder("shuffled", k)


def order_count(spec: str | None) -> int:
    """Orders per item of an ``--option-order`` value (1 for an unreadable one: the caller validated it)."""
    try:
        return parse_order(spec).count
    except InputError:
        return 1


def total_samples(samples: int, spec: str | None) -> int:
    """Samples per item a run asks: ``samples`` per order times the orders per item."""
    return samples * order_count(spec)


def permutations(order: OptionOrder, k: int, item: int, seed: int) -> list[tuple[int, ...]]:
    """The item's ``order.count`` permutations of ``range(k)``; ``p[j]`` is the canonical option shown at ``j``."""
    if order.kind == "given":
        return [tuple(range(k))]
    if order.kind == "reversed":
        return [tuple(range(k - 1, -1, -1))]
    rng = np.random.default_rng([seed, item])
    return [tuple(int(x) for x in rng.permutation(k)) for _ in range(order.count)]


def valid_permutation(perm: Any, k: int) -> bool:
    """Whether ``perm`` (from a record: adversarial) is a list of the integers 0..k-1, each once."""
    return isinstance(perm, (list, tuple, np.ndarray)) and len(perm) == k and \
        all(type(p) in (int, np.int64) for p in perm) and sorted(int(p) for p in perm) == list(range(k))


# ---------------------------------------------------------------------------------------------------------------
# Re-rendering
# ---------------------------------------------------------------------------------------------------------------


def _template_fields(item: dict, user: str) -> tuple[dict, str] | None:
    """(fields, template) when ``user`` is a DVMap template filled with the item's attributes, else None."""
    from dvmap_verl.data.prompts import USER_TEMPLATES, user_prompt
    from dvmap_verl.data.schema import ATTRIBUTE_KEYS, ATTRIBUTE_NAMES

    if "question" not in item or any(ATTRIBUTE_KEYS[a] not in item for a in ATTRIBUTE_NAMES):
        return None
    fields = {a: item[ATTRIBUTE_KEYS[a]] for a in ATTRIBUTE_NAMES}
    fields.update(Question=item["question"], Options=", ".join(item["options"]))
    for template in USER_TEMPLATES:
        try:
            if user_prompt(fields, template) == user:
                return fields, template
        except (KeyError, ValueError):
            return None
    return None


def permuted_user(item: dict, user: str, displayed: Sequence[str]) -> str | None:
    """The user message ``user`` of ``item`` with its options shown as ``displayed``, or None when no rule fits
    (see the module docstring)."""
    from dvmap_verl.data.benchmarks import render_item
    from dvmap_verl.data.prompts import user_prompt

    options = list(item["options"])
    # an imported item: its own benchmark template, when it rebuilds the stored message in the canonical order
    if render_item(item, options) == user:
        return render_item(item, displayed)
    found = _template_fields(item, user)
    if found is not None:
        fields, template = found
        return user_prompt({**fields, "Options": ", ".join(displayed)}, template)
    joined = ", ".join(options)
    if user.count(joined) == 1:
        return user.replace(joined, ", ".join(displayed))
    if any(not o or user.count(o) != 1 for o in options):
        return None
    spans, start = [], 0
    for o in options:  # each option once, in canonical order: its slot gets the option displayed there
        at = user.find(o, start)
        if at < 0:
            return None
        spans.append((at, at + len(o)))
        start = at + len(o)
    out, last = [], 0
    for (a, b), shown in zip(spans, displayed):
        out += [user[last:a], shown]
        last = b
    return "".join(out + [user[last:]])


def permuted_messages(item: dict, perm: Sequence[int]) -> str:
    """The item's chat messages (JSON, as ``items["messages"]``) with its options displayed in ``perm`` order.
    Raises :class:`InputError` naming the item when its prompt cannot be re-rendered."""
    messages = json.loads(item["messages"])
    if list(perm) == list(range(len(perm))):
        return item["messages"]
    displayed = [item["options"][p] for p in perm]
    user = permuted_user(item, messages[-1]["content"], displayed)
    if user is None:
        raise InputError(f"item {item['item']} (q_id {item.get('q_id')!r}): cannot show its options in another "
                         f"order: its user message is no DVMap template, and the options {list(item['options'])!r} "
                         f"occur neither once ', '-joined nor each once in order; use --option-order given")
    messages[-1] = {**messages[-1], "content": user}
    return json.dumps(messages)


class OrderPlan:
    """Per item and order: the permutation and the rendered messages; maps records back to canonical order.

    ``samples``: samples per order (``--samples``). Built once before a run (every prompt is rendered up front, so
    an item that cannot be re-rendered fails before a model loads)."""

    def __init__(self, items: pd.DataFrame, spec: str, seed: int, samples: int):
        self.order = parse_order(spec)
        self.samples = samples
        self.perms: list[list[tuple[int, ...]]] = []
        self.messages: list[list[tuple[dict, ...]]] = []
        refused: list[str] = []
        for r in items.to_dict("records"):
            perms = permutations(self.order, len(r["options"]), int(r["item"]), seed)
            self.perms.append(perms)
            try:
                self.messages.append([tuple(json.loads(permuted_messages(r, p))) for p in perms])
            except InputError as e:
                refused.append(str(e))
                self.messages.append([])
        if refused:  # every item that cannot be shown in another order, named, not only the first
            raise InputError(f"--option-order {self.order}: {len(refused)} of {len(items)} item(s) cannot be "
                             f"re-rendered; first: {refused[0]}"
                             + (f"; also items {[m.split(' ')[1] for m in refused[1:6]]}" if len(refused) > 1 else ""))

    @property
    def total_samples(self) -> int:
        return self.samples * self.order.count

    def order_of(self, sample: int) -> int:
        return sample // self.samples

    def permutation(self, item: int, sample: int) -> tuple[int, ...]:
        return self.perms[item][self.order_of(sample)]

    def request_messages(self, item: int, sample: int) -> tuple[dict, ...]:
        return self.messages[item][self.order_of(sample)]

    def displayed(self, item: int, sample: int, options: Sequence[str]) -> tuple[str, ...]:
        return tuple(options[p] for p in self.permutation(item, sample))

    def annotate(self, rec: dict) -> dict:
        """``rec`` (in place) with its ``order`` and ``permutation``."""
        rec["order"] = self.order_of(rec["sample"])
        rec["permutation"] = list(self.permutation(rec["item"], rec["sample"]))
        return rec

    def to_canonical(self, rec: dict) -> dict:
        """``rec`` (in place), read against the displayed options, with ``pred`` and ``probs`` in canonical order,
        and annotated (:meth:`annotate`)."""
        perm = self.permutation(rec["item"], rec["sample"])
        if rec.get("pred", -1) >= 0:
            rec["pred"] = perm[rec["pred"]]
        if rec.get("probs") is not None:
            canonical = [0.0] * len(perm)
            for shown, p in zip(perm, rec["probs"]):
                canonical[shown] = p
            rec["probs"] = canonical
        return self.annotate(rec)


# ---------------------------------------------------------------------------------------------------------------
# Readouts (report)
# ---------------------------------------------------------------------------------------------------------------


def _record_distribution(pred: int, probs: Any, k: int) -> np.ndarray | None:
    """One record's canonical distribution: its probs, else a one-hot of its answer; None when unanswered."""
    if isinstance(probs, (list, tuple, np.ndarray)) and len(probs) == k:
        return np.asarray(probs, dtype=float)
    if 0 <= pred < k:
        return np.eye(k)[pred]
    return None


def position_bias(scored: pd.DataFrame) -> dict[str, Any]:
    """Answer share by displayed position beside the target's share there.

    ``scored``: one row per record with ``pred`` (canonical, -1 unanswered), ``probs`` (or None), ``truth``, ``k``,
    ``permutation``. A record adds its answer's mass (its probs, or 1 for its parsed answer) at the positions its
    options were displayed in, and 1 at the truth's displayed position. Shares are over answered records with a
    valid permutation; ``tv``: total variation between the two share vectors (0: no position bias)."""
    width = int(scored["k"].max()) if len(scored) else 0
    model, target = np.zeros(width), np.zeros(width)
    invalid = unanswered = 0
    for pred, probs, truth, k, perm in zip(scored["pred"], scored.get("probs", [None] * len(scored)),
                                           scored["truth"], scored["k"], scored["permutation"]):
        k = int(k)
        if not valid_permutation(perm, k):
            invalid += 1
            continue
        dist = _record_distribution(int(pred), probs, k)
        if dist is None:
            unanswered += 1
            continue
        perm = [int(p) for p in perm]
        model[:k] += dist[perm]  # dist[perm][j]: mass of the option displayed at j
        target[perm.index(int(truth))] += 1
    n = int(target.sum())
    rows = [{"position": j, "model_share": model[j] / n, "target_share": target[j] / n} for j in range(width)] \
        if n else []
    return {"records": n, "invalid_permutation": invalid, "unanswered": unanswered, "by_position": rows,
            "tv": float(0.5 * np.abs(model - target).sum() / n) if n else float("nan")}


def per_order_distributions(scored: pd.DataFrame, n_orders: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(items, P, seen): per item (sorted by ``item``) and order, the mean canonical distribution of its answered
    records, P of shape (items, orders, max K); ``seen[i, o]``: whether order o of item i has an answer."""
    items = scored.drop_duplicates("item").sort_values("item").reset_index(drop=True)
    width = int(items["k"].max()) if len(items) else 0
    p = np.zeros((len(items), n_orders, width))
    counts = np.zeros((len(items), n_orders))
    row_of = {int(i): n for n, i in enumerate(items["item"])}
    orders = scored["order"] if "order" in scored else pd.Series(0, index=scored.index)
    for item, order, pred, probs, k in zip(scored["item"], orders, scored["pred"],
                                           scored.get("probs", [None] * len(scored)), scored["k"]):
        if not (isinstance(order, (int, np.integer, float)) and order == order and 0 <= int(order) < n_orders):
            continue  # a record with no readable order (tampered) adds to no order
        dist = _record_distribution(int(pred), probs, int(k))
        if dist is not None:
            p[row_of[int(item)], int(order), :int(k)] += dist
            counts[row_of[int(item)], int(order)] += 1
    seen = counts > 0
    return items, p / np.maximum(counts, 1)[:, :, None], seen


def consistency(p: np.ndarray, seen: np.ndarray) -> dict[str, Any]:
    """Share of items whose canonical modal answer (argmax of each order's distribution; the lowest option on a
    tie) is the same under every order, over items answered under every order."""
    full = seen.all(axis=1)
    modal = p.argmax(axis=2)
    agree = (modal == modal[:, :1]).all(axis=1)
    n = int(full.sum())
    return {"items": n, "items_missing_an_order": int((~full).sum()),
            "consistency": float(agree[full].mean()) if n else float("nan")}


def order_averaged(p: np.ndarray, seen: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per item: the mean over its answered orders of each order's distribution (uniform when none answered),
    shape (items, max K)."""
    n = seen.sum(axis=1)
    avg = p.sum(axis=1) / np.maximum(n, 1)[:, None]
    uniform = (np.arange(p.shape[2])[None, :] < k[:, None]) / k[:, None]
    return np.where((n > 0)[:, None], avg, uniform)


def order_report(model: pd.DataFrame, spec: str) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """The report's option-order section of a scored model table (one row per record, canonical ``pred``),
    and (items, order-averaged P padded to ``width``) for the distributional readout entry."""
    n_orders = order_count(spec)
    out: dict[str, Any] = {"option_order": spec, "orders": n_orders,
                           "position_bias": position_bias(model) if "permutation" in model else {}}
    items, p, seen = per_order_distributions(model, n_orders)
    if n_orders > 1:
        out["consistency"] = consistency(p, seen)
    return out, items, order_averaged(p, seen, items["k"].to_numpy().astype(int))


def order_markdown(section: dict[str, Any]) -> list[str]:
    """The report's "Option order" section."""
    pb = section.get("position_bias") or {}
    lines = ["## Option order", "",
             f"Options shown as `{section['option_order']}` ({section['orders']} order(s) per item); answers are "
             f"mapped back to the canonical order. Position bias: the share of the model's answers at each displayed "
             f"position beside the share of records whose target sits there; TV between the two is 0 without "
             f"position bias.", ""]
    if pb.get("by_position"):
        lines += ["| position (1 = first shown; `metrics.json` counts from 0) | model share | target share |",
                  "|---|---|---|"]
        lines += [f"| {r['position'] + 1} | {r['model_share']:.3f} | {r['target_share']:.3f} |"
                  for r in pb["by_position"]]
        lines += ["", f"Position-bias TV {pb['tv']:.3f} over {pb['records']:,} answered record(s); "
                      f"{pb['unanswered']:,} unanswered, {pb['invalid_permutation']:,} with no valid permutation "
                      f"(left out).", ""]
    c = section.get("consistency")
    if c:
        lines += [f"Cross-order consistency: {c['consistency']:.3f} (the share of the {c['items']:,} item(s) that "
                  f"give the same modal answer under all {section['orders']} orders; "
                  f"{c['items_missing_an_order']:,} item(s) lack an answer under some order and are left out). The "
                  f"order-averaged distribution is scored in the distributional section.", ""]
    return lines
