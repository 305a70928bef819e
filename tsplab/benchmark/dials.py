"""Dials of the synthetic benchmark: each switches on one paper's premise, off by default.

Why: the plain benchmark (``tsplab.benchmark``) makes foreground decidable from one clip's motion,
gives source and target one visual world, never cuts the scene at a boundary (while BSP's and PAL's
syntheses always do), and has one class per video. Each dial below removes one of those
simplifications by a documented amount, so that a study can sweep its level and ask whether a
paper's claim grows with its premise. Every dial has a manipulation check in
``tsplab.benchmark.checks`` that measures, without any method in the loop, that the level does
what it says.

Levels (``BenchmarkDials``; 0 is off for every dial):

* ``context_distractors`` in [0, 1]: the share of each background stretch in which the object
  performs another class's motion at the video's action amplitude (one distractor segment per
  stretch, at a random place in it; its class is one the video's actions do not use where there is
  one). The same local motion is then foreground in one video and background in another. 1: no
  idle background is left, and a clip's motion alone no longer says foreground or background.
* ``foreground_share`` in {0} or [0.05, 0.85]: 0 keeps the planner's own instance lengths; a level
  re-plans each video's instances so that they cover about that share of its frames (clipped per
  video to what fits with the gaps of ``min_gap_frames``).
* ``source_shift`` in [0, 1]: how far the source set's visual style is from the target's, all five
  parts at once: object shape (a superellipse of exponent 2 + 6 s: the disk at 0, nearly a square at
  1), texture family (stripes blended with a checkerboard of weight s, period x (1 + s)), blur
  (Gaussian, sigma = 1.5 s px at 64 px), pixel noise (x (1 + 2 s)) and scale (object radius
  x (1 - 0.25 s)).
* ``source_shared_motions`` in [0, 1]: the share of source classes that perform a target motion
  (under a source name, ``srcNN_<motion>``); 0: none, as in the plain source set. The issue's
  setting is 0.5 with ``source_shift`` on.
* ``multi_action`` in [0, 1]: the probability that an instance after a video's first takes another
  class than the video's (uniformly among the others); the scene follows the first class.
* ``cuts_at_boundaries`` in [0, 1]: the probability that an action boundary (a start or an end
  inside the video) is a scene cut: from that frame on the scene (background, texture, object
  colour) is a new one, drawn like a video's scene for the class of the action that starts there
  (the video's class at an end). The object's path goes on across a cut.
* ``cuts_elsewhere`` in [0, 4]: the expected number of scene cuts per video (Poisson) at random
  frames at least ``CUT_MARGIN_FRAMES`` away from every boundary.
* ``dense`` in [0, 1]: the probability that an instance gets an overlapping instance of another
  class (MultiThumos-like). Where k instances overlap, the object's path is the sum of their paths,
  each at 1/k of its amplitude (so the object keeps the same reach), and its frame label is the later
  instance's class; the annotations list every instance.
* ``onset_cue`` in [0, 1] with ``onset_cue_kind`` (``colour`` or ``size``): during the first
  ``ONSET_FRAMES`` frames of every action instance the object's colour moves ``0.5 * level`` of the
  way to white (``colour``), or its radius grows by ``0.35 * level`` (``size``): how much boundary
  evidence appearance carries. Distractors get no cue (they are background).

Randomness: every dial draws from generators of its own, seeded from (seed, stream, video index)
on streams that the plain benchmark never uses, and only when a dial is on; with every dial off the
benchmark consumes exactly the random numbers it did before the dials existed, and its files are
the same (tested against hashes recorded before).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from tsplab.errors import InputError

ONSET_FRAMES = 3           # frames of the onset cue at the start of each instance
CUT_MARGIN_FRAMES = 3      # a cut "elsewhere" stays this far from every action boundary
# Random streams of the dials (the plain benchmark uses streams 1-8).
_PLAN_STREAM, RENDER_STREAM, SOURCE_RENDER_STREAM = 20, 21, 23

# name: (low, high, what the level means); foreground_share also allows 0 (off).
DIAL_RANGES = {
    "context_distractors": (0.0, 1.0, "share of each background stretch showing another class's motion"),
    "foreground_share": (0.05, 0.85, "share of frames inside actions (0: the planner's own)"),
    "source_shift": (0.0, 1.0, "distance of the source set's visual style from the target's"),
    "source_shared_motions": (0.0, 1.0, "share of source classes performing a target motion"),
    "multi_action": (0.0, 1.0, "P(an instance after the first takes another class)"),
    "cuts_at_boundaries": (0.0, 1.0, "P(an action boundary is a scene cut)"),
    "cuts_elsewhere": (0.0, 4.0, "expected scene cuts per video away from boundaries"),
    "dense": (0.0, 1.0, "P(an instance gets an overlapping instance of another class)"),
    "onset_cue": (0.0, 1.0, "strength of the appearance change at action onset"),
}
ONSET_CUE_KINDS = ("colour", "size")


@dataclass(frozen=True)
class BenchmarkDials:
    """The dial levels of a benchmark (module docstring: each level's scale); all 0 is the plain
    benchmark. Out-of-range levels raise ``InputError`` naming the dial and its range."""

    context_distractors: float = 0.0
    foreground_share: float = 0.0
    source_shift: float = 0.0
    source_shared_motions: float = 0.0
    multi_action: float = 0.0
    cuts_at_boundaries: float = 0.0
    cuts_elsewhere: float = 0.0
    dense: float = 0.0
    onset_cue: float = 0.0
    onset_cue_kind: str = "colour"

    def __post_init__(self):
        for name, (lo, hi, _) in DIAL_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"{name}={value!r}: must be a number in [{lo:g}, {hi:g}]")
            object.__setattr__(self, name, float(value))
            if name == "foreground_share" and value == 0:
                continue
            if not lo <= value <= hi:
                allowed = f"0 or [{lo:g}, {hi:g}]" if name == "foreground_share" else f"[{lo:g}, {hi:g}]"
                raise InputError(f"{name}={value:g}: must be in {allowed} ({DIAL_RANGES[name][2]})")
        if self.onset_cue_kind not in ONSET_CUE_KINDS:
            raise InputError(f"onset_cue_kind={self.onset_cue_kind!r}: must be one of {', '.join(ONSET_CUE_KINDS)}")

    @property
    def active(self) -> bool:
        """Any dial on (``onset_cue_kind`` alone changes nothing)."""
        return any(getattr(self, name) for name in DIAL_RANGES)

    @classmethod
    def from_value(cls, value) -> "BenchmarkDials | None":
        """``None`` for no dials or all off (the plain benchmark), else the dials; ``value`` is a
        ``BenchmarkDials``, a dict (from ``benchmark.json``) or None."""
        if value is None:
            return None
        if isinstance(value, dict):
            unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise InputError(f"dials: unknown dial {unknown[0]!r}; valid: {', '.join(DIAL_NAMES)}")
            value = cls(**value)
        if not isinstance(value, cls):
            raise InputError(f"dials={value!r}: must be a BenchmarkDials, a dict of levels or None")
        return value if value.active else None


DIAL_NAMES = tuple(f.name for f in dataclasses.fields(BenchmarkDials))


def parse_dial_options(options) -> BenchmarkDials | None:
    """Dials from ``NAME=VALUE`` strings (``tsplab synth --option context_distractors=0.5``);
    ``InputError`` (one line, naming the dial and its range) for an unknown name or a bad value."""
    levels = {}
    for option in options or ():
        name, sep, text = str(option).partition("=")
        name = name.strip()
        if not sep or name not in DIAL_NAMES:
            raise InputError(f"--option {option}: give NAME=VALUE with NAME one of {', '.join(DIAL_NAMES)}")
        if name == "onset_cue_kind":
            levels[name] = text.strip()
            continue
        lo, hi, _ = DIAL_RANGES[name]
        try:
            levels[name] = float(text)
        except ValueError:
            raise InputError(f"--option {option}: {name} must be a number in [{lo:g}, {hi:g}]") from None
    return BenchmarkDials.from_value(BenchmarkDials(**levels))


def check_benchmark_options(options, name: str = "benchmark_options") -> BenchmarkDials | None:
    """The dials of a notebook's ``benchmark_options`` (a dict ``{dial: level}``, ``{}``: the plain
    benchmark), checked at once: ``InputError`` naming ``name``, the dial and its range for an unknown
    dial or a level out of range, before anything is generated."""
    if not isinstance(options, dict):
        raise InputError(f"{name}={options!r}: give a dict {{dial: level}} with dials among "
                         f"{', '.join(DIAL_NAMES)} ({{}}: the plain benchmark)")
    try:
        return BenchmarkDials.from_value(dict(options))
    except (InputError, TypeError) as exc:
        raise InputError(f"{name}: {exc}") from None


def dial_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(index)]))


# --------------------------------------------------------------------------------------------------
# Planning (target videos)


def apply_plan_dials(config, plan, seed: int):
    """``plan`` (a target ``VideoPlan`` planned as without dials) with the planning dials of
    ``config.dials`` applied, drawn from the video's own dial stream."""
    dials = config.dials
    rng = dial_rng(seed, _PLAN_STREAM, plan.index)
    if dials.foreground_share:
        plan.instances = _instances_with_share(config, rng, plan.num_frames, dials.foreground_share)
    labels = [plan.label] * len(plan.instances)
    for i in range(1, len(labels)):
        if rng.random() < dials.multi_action:
            labels[i] = _other_class(rng, config.num_classes, {plan.label})
    if dials.dense:
        plan.instances, labels = _add_overlaps(config, rng, plan.num_frames, plan.instances, labels,
                                               dials.dense)
    plan.instance_labels = labels
    if dials.context_distractors:
        plan.distractors = _distractors(config, rng, plan, dials.context_distractors)
    if dials.cuts_at_boundaries or dials.cuts_elsewhere:
        plan.cuts = _cuts(rng, plan, dials.cuts_at_boundaries, dials.cuts_elsewhere)
    return plan


def _other_class(rng, num_classes: int, avoid: set) -> int:
    choices = [c for c in range(num_classes) if c not in avoid]
    return int(rng.choice(choices)) if choices else int(rng.integers(num_classes))


def _instances_with_share(config, rng, num_frames: int, share: float) -> list[tuple]:
    """Instances covering about ``share`` of the video, split into 1-3 pieces with the plain
    benchmark's gaps (>= min_gap_frames between instances and one background stretch)."""
    gap, lo = config.min_gap_frames, config.min_instance_frames
    n = int(rng.integers(config.instances_range[0], config.instances_range[1] + 1))
    while n > 1 and num_frames - (n - 1) * gap < n * lo + gap:
        n -= 1
    reserved = max(n - 1, 1) * gap
    total = int(np.clip(round(share * num_frames), n * lo, num_frames - reserved))
    weights = rng.dirichlet(np.ones(n))
    lengths = lo + np.floor(weights * (total - n * lo)).astype(int)
    free = num_frames - reserved - int(lengths.sum())
    cuts = np.sort(rng.integers(0, free + 1, size=n))
    gaps = np.diff(np.concatenate([[0], cuts, [free]]))
    gaps[1:-1] += gap
    if n == 1:
        gaps[[0, -1][int(rng.integers(0, 2))]] += gap
    instances, t = [], 0
    for i in range(n):
        t += int(gaps[i])
        instances.append((t, t + int(lengths[i]), round(float(rng.uniform(*config.period_frames_range)), 3)))
        t += int(lengths[i])
    return instances


def foreground_mask(num_frames: int, segments) -> np.ndarray:
    """bool [T]: frames inside any of ``segments`` ((start, end, ...) with end exclusive)."""
    mask = np.zeros(num_frames, bool)
    for segment in segments:
        mask[segment[0]:segment[1]] = True
    return mask


def _longest_run(mask: np.ndarray) -> int:
    best = run = 0
    for value in mask:
        run = run + 1 if value else 0
        best = max(best, run)
    return best


def _add_overlaps(config, rng, num_frames: int, instances: list, labels: list, level: float):
    """With probability ``level`` per instance, an instance of another class overlapping it by at
    least half a clip; kept only if the video still has a background stretch of min_gap_frames."""
    lo = config.min_instance_frames
    hi = max(lo, int(config.max_instance_frac * num_frames))
    extra = []
    for (start, end, _), label in zip(instances, labels):
        if rng.random() >= level:
            continue
        length = int(min(hi, round(math.exp(rng.uniform(math.log(lo), math.log(hi + 1))))))
        overlap = min(lo // 2, end - start)
        first = int(rng.integers(max(0, start - length + overlap), max(1, end - overlap + 1)))
        new = (first, min(num_frames, first + length), round(float(rng.uniform(*config.period_frames_range)), 3))
        background = ~foreground_mask(num_frames, instances + [e[0] for e in extra] + [new])
        if new[1] - new[0] >= lo and _longest_run(background) >= config.min_gap_frames:
            extra.append((new, _other_class(rng, config.num_classes, {label})))
    merged = sorted(list(zip(instances, labels)) + extra, key=lambda item: item[0][0])
    return [m[0] for m in merged], [m[1] for m in merged]


def _distractors(config, rng, plan, level: float) -> list[tuple]:
    """One segment (start, end, period, class) per background stretch, covering ``level`` of it."""
    background = ~foreground_mask(plan.num_frames, plan.instances)
    used = set(plan.instance_labels or [plan.label])
    out, t = [], 0
    while t < plan.num_frames:
        if not background[t]:
            t += 1
            continue
        end = t
        while end < plan.num_frames and background[end]:
            end += 1
        length = int(round(level * (end - t)))
        if length >= 2:
            first = t + int(rng.integers(0, end - t - length + 1))
            out.append((first, first + length, round(float(rng.uniform(*config.period_frames_range)), 3),
                        _other_class(rng, config.num_classes, used)))
        t = end
    return out


def _cuts(rng, plan, at_boundaries: float, elsewhere: float) -> list[int]:
    """Frames where a new scene starts: action boundaries with probability ``at_boundaries``, plus
    Poisson(``elsewhere``) frames at least CUT_MARGIN_FRAMES from every boundary."""
    boundaries = sorted({b for s, e, _ in plan.instances for b in (s, e) if 0 < b < plan.num_frames})
    cuts = {b for b in boundaries if rng.random() < at_boundaries}
    far = [t for t in range(1, plan.num_frames)
           if all(abs(t - b) >= CUT_MARGIN_FRAMES for b in boundaries)]
    for _ in range(int(rng.poisson(elsewhere))):
        if far:
            cuts.add(int(rng.choice(far)))
    return sorted(cuts)


def source_motions(config, base_motions: tuple, target_motions: tuple) -> tuple:
    """The motion of each source class: ``base_motions``, with the last ``source_shared_motions``
    share of the classes (at most one per target class) performing target motions instead."""
    dials = config.dials
    share = dials.source_shared_motions if dials else 0.0
    k = len(base_motions)
    shared = min(int(round(share * k)), len(target_motions))
    return tuple(base_motions[:k - shared]) + tuple(target_motions[:shared])
